"""Every way a value reaches a run: typed on the command line (the Train page's text field parses the same way,
Option.parse), or given to TrainConfig directly. Accepted exactly when the help text says so; otherwise a
ValueError whose message starts with the field's name (exit status 2 on the command line), never a TypeError
or a traceback."""
import pytest

from core.engine.config import TrainConfig, config_from_args
from core.train import main, parse_args

NONE = type(None)  # marks "accepted, and the value is None" (max-batches 0 = every batch)
LONG = "9" * 5000  # int() refuses more than 4300 digits with a message that names no field

# (flag, typed text, the value it gives, or None when it must be refused naming the field)
TYPED = [
    ("hidden", "512,256,128,32", (512, 256, 128, 32)), ("hidden", "512, 256,128", (512, 256, 128)),
    ("hidden", " 64 ", (64,)), ("hidden", "512,,3", None), ("hidden", ",512", None), ("hidden", "512,", None),
    ("hidden", "", None), ("hidden", "   ", None), ("hidden", "512 256", None), ("hidden", "512;256", None),
    ("hidden", "1_000", None), ("hidden", "١٢٣", None), ("hidden", "５１２", None), ("hidden", "-3", None),
    ("hidden", "0", None), ("hidden", "100001", None), ("hidden", "512.0", None), ("hidden", "1e3", None),
    ("hidden", ",".join(["8"] * 11), None), ("hidden", "100000", None), ("hidden", LONG, None),
    ("hidden", "0x10", None), ("hidden", "None", None),
    ("lr", "1e-3", 1e-3), ("lr", "0.001", 1e-3), ("lr", ".5", 0.5), ("lr", "1E-2", 1e-2), ("lr", "10", 10.0),
    ("lr", "nan", None), ("lr", "inf", None), ("lr", "-1e-3", None), ("lr", "+1e-3", None), ("lr", "0", None),
    ("lr", "1e-7", None), ("lr", "11", None), ("lr", "1_0", None), ("lr", "0x1p-3", None), ("lr", "", None),
    ("lr", "1e400", None), ("lr", "１e-3", None),
    ("batch-size", "64", 64), ("batch-size", " 128 ", 128), ("batch-size", "064", 64), ("batch-size", "0", None),
    ("batch-size", "60001", None), ("batch-size", "1.5", None), ("batch-size", "1e3", None),
    ("batch-size", "-64", None), ("batch-size", "+64", None), ("batch-size", "6_4", None),
    ("batch-size", "٦٤", None), ("batch-size", LONG, None),
    ("epochs", "200", 200), ("epochs", "201", None), ("epochs", "0", None),
    ("max-batches", "0", NONE), ("max-batches", "10", 10), ("max-batches", "-1", None),
    ("max-batches", "60001", None),
    ("seed", "2147483647", 2147483647), ("seed", "2147483648", None), ("seed", "99999999999999999999999", None),
    ("beta1", "0.9999", 0.9999), ("beta1", "1", None), ("eps", "1e-13", None), ("momentum", "0.99995", None),
    ("beta2", "0.99999", 0.99999),
]


@pytest.mark.parametrize("flag, text, expected", TYPED, ids=[f"{f}={t[:20]!r}" for f, t, _ in TYPED])
def test_typed_values(flag, text, expected, tmp_path, capsys):
    field = flag.replace("-", "_")
    if expected is None:
        assert main([f"--{flag}={text}", "--runs-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {field}") and "Traceback" not in err
        assert len(err) < 500  # one readable line, however long the input
        assert not any(tmp_path.iterdir())
    else:
        config = config_from_args(parse_args([f"--{flag}={text}"]))
        assert getattr(config, field) == (None if expected is NONE else expected)


CHOICES = [["--dataset", "cifar"], ["--optimizer", "adamw"], ["--precision", "fp16"], ["--bn", "yes"],
           ["--epochs"], ["--hidden"]]


@pytest.mark.parametrize("argv", CHOICES, ids=[" ".join(a) for a in CHOICES])
def test_choices_and_flags_refused_by_argparse(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err or "unrecognized arguments" in err


# Values of the wrong kind given to TrainConfig directly (the store reads config.json through the same path).
DIRECT = [
    ("hidden", None), ("hidden", "512"), ("hidden", [512, "x"]), ("hidden", (512.0,)), ("hidden", (True,)),
    ("hidden", {512}), ("hidden", b"512"), ("hidden", []), ("hidden", [[512]]), ("hidden", (0,)),
    ("lr", "0.1"), ("lr", None), ("lr", True), ("lr", complex(1, 0)), ("lr", float("nan")),
    ("batch_size", 64.0), ("batch_size", "64"), ("batch_size", None), ("batch_size", True),
    ("epochs", "10"), ("seed", None), ("seed", 1.0), ("seed", -1),
    ("dataset", None), ("dataset", ["mnist"]), ("dataset", 5),
    ("batch_norm", "yes"), ("batch_norm", 1), ("batch_norm", None),
    ("precision", None), ("optimizer", 5), ("max_batches", "5"), ("max_batches", -1), ("max_batches", True),
    ("max_batches", 0), ("beta1", 1.0), ("eps", 0), ("momentum", -0.1), ("double_softmax", "false"),
]


@pytest.mark.parametrize("field, value", DIRECT, ids=[f"{f}={v!r}" for f, v in DIRECT])
def test_wrong_kinds_given_directly(field, value):
    with pytest.raises(ValueError, match=f"^{field}"):
        TrainConfig(**{field: value})


def test_config_from_dict_refuses_what_is_not_a_mapping():
    for bad in (None, [], "lr=1", 5):
        with pytest.raises(ValueError, match="^config"):
            TrainConfig.from_dict(bad)


def test_catalogue_is_large_enough():
    assert len(TYPED) + len(CHOICES) + len(DIRECT) >= 67
