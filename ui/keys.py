"""Every session-state key and widget key, named once. Prefix = page."""

# Every page (app.py): the run store's revision the page was drawn from (ui/live.py)
APP_REVISION = "app_store_revision"
APP_WATCH_OWNER = "app_watch_owner"  # ui/live.py: whose runs the page redraws for (class mode)

# Train page: one widget per TrainConfig field, keyed TRAIN + "_" + field name (ui/config_form.py)
TRAIN = "train"
TRAIN_DATASET = "train_dataset"
TRAIN_BN = "train_batch_norm"
TRAIN_LR = "train_lr"
TRAIN_BATCH = "train_batch_size"
TRAIN_EPOCHS = "train_epochs"
TRAIN_HIDDEN = "train_hidden"
TRAIN_SEED = "train_seed"
TRAIN_DOUBLE_SOFTMAX = "train_double_softmax"
TRAIN_MAX_BATCHES = "train_max_batches"
TRAIN_PRECISION = "train_precision"
TRAIN_ROBUST = "train_robust"
TRAIN_OPTIMIZER = "train_optimizer"
TRAIN_START = "train_start"
TRAIN_CONFIRM_DUPLICATE = "train_confirm_duplicate"
TRAIN_PENDING_DUPLICATE = "train_pending_duplicate"  # (message, the config it was about)
TRAIN_REFUSED = "train_refused"  # why the scheduler would not take the run
TRAIN_LAB_RUNS = "train_lab_runs"
TRAIN_RUN_ID = "train_run_id"
TRAIN_PAUSE = "train_pause"
TRAIN_RESUME = "train_resume"
TRAIN_STOP = "train_stop"
# (the loss chart's controls: TRAIN + "_loss_log", TRAIN + "_loss_smoothing", ui/curves.py)

# Runs page
RUNS_OVERLAY = "runs_overlay"
RUNS_LAB_RUNS = "runs_lab_runs"
RUNS_EDIT = "runs_edit"
RUNS_NEW_NAME = "runs_new_name"
RUNS_RENAME = "runs_rename"
RUNS_DELETE = "runs_delete"
RUNS_CONFIRM_DELETE = "runs_confirm_delete"
RUNS_DELETE_FAILED = "runs_delete_failed"
RUNS_CONFIRM_DELETE_FAILED = "runs_confirm_delete_failed"
RUNS_CLEANUP_RESULT = "runs_cleanup_result"
RUNS_EVAL = "runs_eval"
RUNS_EVAL_NORMALIZED = "runs_eval_normalized"
RUNS_EVAL_SCALE = "runs_eval_scale"  # how the confusion matrix is coloured
RUNS_CONFUSION = "runs_confusion"  # the confusion chart (its selection: the clicked cell)
RUNS_PAIR = "runs_pair"  # (true, predicted) the gallery shows, None: every pair
RUNS_PAIR_OF = "runs_pair_of"  # the run that pair was picked on
RUNS_PAIR_CLEAR = "runs_pair_clear"
RUNS_TAB = "runs_tab"  # which part of the page is open (only that part runs): one of RUNS_PARTS
RUNS_PARTS = ("Compare curves", "Evaluate a run", "Manage runs")
RUNS_LOSS = "runs"  # prefix of the overlay's loss-chart controls (ui/curves.py)

# Softmax explorer
SM_TAB = "sm_tab"  # which part is open (only that one runs): one of SM_PARTS
SM_PARTS = ("Multi-class", "Binary: sigmoid vs 2-way softmax", "Labels: ordinal vs one-hot", "Double softmax")
SM_N = "sm_n_classes"
SM_NAMES = "sm_class_names"
SM_TRUE = "sm_true_class"
SM_TEMP = "sm_temperature"
SM_PRESET = "sm_preset"
SM_LOGIT = "sm_logit_"  # + index
SM_P_CAT = "sm_p_cat"
SM_LABEL_CONF = "sm_label_confidence"
SM_RUN_EXPERIMENT = "sm_run_experiment"
SM_EXPERIMENT = "sm_experiment_result"
SM_TRAIN_BOTH = "sm_train_both"
SM_DOUBLE_RUNS = "sm_double_runs"
SM_DOUBLE_PICK = "sm_double_pick"

# Draw page
DRAW_CANVAS_N = "draw_canvas_n"  # bumped by Clear: a new canvas key really clears it
DRAW_CANVAS = "draw_canvas_"  # + n
DRAW_CLEAR = "draw_clear"
DRAW_STROKE = "draw_stroke_width"
DRAW_MODEL = "draw_model"
DRAW_DEFAULT_MODEL = "draw_default_model"  # the default the page chose last: a choice equal to it follows a better model
DRAW_COMPARE = "draw_compare"
DRAW_COMPARE_MODEL = "draw_compare_model"
DRAW_NAIVE = "draw_naive"
DRAW_QUICK_TRAIN = "draw_quick_train"
DRAW_LABEL = "draw_label"
DRAW_SAVE = "draw_save"
DRAW_NON_DIGITS = "draw_non_digits"
DRAW_MINE_DELETE_PICK = "draw_mine_delete_pick"  # saved drawings chosen for deletion
DRAW_MINE_DELETE = "draw_mine_delete"
DRAW_MINE_EXPORT = "draw_export"
DRAW_ODD_DELETE = "draw_odd_delete_"  # + the entry's position in the list of odd entries

# BatchNorm lab
BN_DATASET = "bn_dataset"
BN_EPOCHS = "bn_epochs"
BN_SEEDS = "bn_seeds"
BN_LR = "bn_lr"
BN_MAX_BATCHES = "bn_max_batches"
BN_START = "bn_start"
BN_GROUP = "bn_group"
BN_STOP = "bn_stop"
BN_LAYER = "bn_layer"
BN_MODES = "bn_train_vs_eval"
BN_MODES_RESULT = "bn_modes_result"
BN_SWEEP_START = "bn_sweep_start"
BN_SWEEP_GROUP = "bn_sweep_group"
BN_PCT_VIEW = "bn_percentile_view"
BN_UNIT = "bn_unit"
# BatchNorm lab, paper mode (ui/bn_paper.py)
BN_PAPER_NETWORK = "bn_paper_network"
BN_PAPER_STEPS = "bn_paper_steps"
BN_PAPER_LR = "bn_paper_lr"
BN_PAPER_START = "bn_paper_start"
BN_PAPER_GROUP = "bn_paper_group"
BN_PAPER_UNIT = "bn_paper_unit"
BN_PAPER_STOP = "bn_paper_stop"
BN_TAB = "bn_tab"  # which part of the lab is open (only that part runs): one of BN_PARTS
BN_PARTS = ("Twins: BN vs no-BN", "Inside the network", "Train vs eval mode", "Learning-rate headroom",
            "Paper: Ioffe & Szegedy")

# Tuning lab (widget keys; TUNE_STUDY_* + a study name for a study's own buttons)
TUNE = "tune"
TUNE_TAB = "tune_tab"  # which lesson is open (only that one runs): one of TUNE_PARTS
TUNE_PARTS = ("Random vs grid", "Scale: learning rate", "Scale: Adam's β1", "Coarse to fine", "Your own study")
TUNE_EPOCHS = "tune_epochs"
TUNE_BATCHES = "tune_max_batches"
TUNE_GVR_START = "tune_gvr_start"
TUNE_GVR_GROUP = "tune_gvr_group"
TUNE_GVR_REPS = "tune_gvr_repetitions"
TUNE_GVR_REPEAT = "tune_gvr_repeat"
TUNE_GVR_STOP_ALL = "tune_gvr_stop_all"
TUNE_LR_N = "tune_lr_trials"
TUNE_LR_START = "tune_lr_start"
TUNE_LR_GROUP = "tune_lr_group"
TUNE_BETA_N = "tune_beta_trials"
TUNE_BETA_START = "tune_beta_start"
TUNE_BETA_GROUP = "tune_beta_group"
TUNE_C2F_N = "tune_c2f_trials"
TUNE_C2F_START = "tune_c2f_start"
TUNE_C2F_GROUP = "tune_c2f_group"
TUNE_C2F_CHART = "tune_c2f_chart"
TUNE_C2F_FINE = "tune_c2f_fine"
TUNE_OWN_PARAMS = "tune_own_params"
TUNE_OWN_SAMPLER = "tune_own_sampler"
TUNE_OWN_PRUNER = "tune_own_pruner"
TUNE_OWN_N = "tune_own_trials"
TUNE_OWN_NAME = "tune_own_name"
TUNE_OWN_START = "tune_own_start"
TUNE_VIEW = "tune_view_study"
TUNE_STOP = "tune_stop_"  # + study group or name
TUNE_RESUME = "tune_resume_"  # + study group or name

# Frameworks page
FW_BN = "fw_batch_norm"
FW_EPOCHS = "fw_epochs"
FW_MAX_BATCHES = "fw_max_batches"
FW_SEED = "fw_seed"
FW_MATCH = "fw_match_defaults"
FW_SWITCH_BACK = "fw_switch_back"
FW_START = "fw_start"
FW_GROUP = "fw_group"
FW_STOP = "fw_stop"
FW_YARDSTICK = "fw_yardstick"  # measure the float64 yardstick of the shown twin set
FW_YARDSTICKS = "fw_yardsticks"  # session state: {PyTorch run id: Replica}

# Who is looking (ui/session.py) and lesson links (ui/links.py)
SESSION_LEARNER = "session_learner_key"
SESSION_TEACHER = "session_teacher_key"
SESSION_JOIN_FORM = "session_join_form"
SESSION_NAME = "session_display_name"
SESSION_CLASS_RUNS = "session_class_runs"  # show other learners' runs (read-only)
LINK_APPLIED = "link_applied"  # (page, the URL's parameters) last applied to the widgets

# Class page (the teacher's)
CLASS_PAUSE_ALL = "class_pause_all"
CLASS_RUN = "class_run"
CLASS_STOP = "class_stop"
CLASS_DELETE = "class_delete"
CLASS_CONFIRM_DELETE = "class_confirm_delete"
CLASS_TITLE = "class_challenge_title"
CLASS_GOAL = "class_challenge_goal"
CLASS_TARGET = "class_challenge_target"
CLASS_MAX_EPOCHS = "class_challenge_max_epochs"
CLASS_MAX_PARAMS = "class_challenge_max_parameters"
CLASS_BN = "class_challenge_batch_norm"
CLASS_MAX_BATCH = "class_challenge_max_batch_size"
CLASS_SET = "class_challenge_set"
CLASS_CLEAR = "class_challenge_clear"
CLASS_REQUEUE = "class_requeue"

# Predict, then reveal (ui/predict.py): + question id, or + page + "_lock"
PREDICT = "predict"
