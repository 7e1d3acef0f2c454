"""Every session-state key and widget key, named once. Prefix = page."""

# Train page
TRAIN_DATASET = "train_dataset"
TRAIN_BN = "train_bn"
TRAIN_LR = "train_lr"
TRAIN_BATCH = "train_batch_size"
TRAIN_EPOCHS = "train_epochs"
TRAIN_HIDDEN = "train_hidden"
TRAIN_SEED = "train_seed"
TRAIN_DOUBLE_SOFTMAX = "train_double_softmax"
TRAIN_MAX_BATCHES = "train_max_batches"
TRAIN_START = "train_start"
TRAIN_CONFIRM_DUPLICATE = "train_confirm_duplicate"
TRAIN_PENDING_DUPLICATE = "train_pending_duplicate"
TRAIN_RUN_ID = "train_run_id"
TRAIN_PAUSE = "train_pause"
TRAIN_RESUME = "train_resume"
TRAIN_STOP = "train_stop"

# Runs page
RUNS_OVERLAY = "runs_overlay"
RUNS_EDIT = "runs_edit"
RUNS_NEW_NAME = "runs_new_name"
RUNS_RENAME = "runs_rename"
RUNS_DELETE = "runs_delete"
RUNS_CONFIRM_DELETE = "runs_confirm_delete"
RUNS_EVAL = "runs_eval"
RUNS_EVAL_NORMALIZED = "runs_eval_normalized"

# Softmax explorer
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
DRAW_COMPARE = "draw_compare"
DRAW_COMPARE_MODEL = "draw_compare_model"
DRAW_NAIVE = "draw_naive"
DRAW_QUICK_TRAIN = "draw_quick_train"
DRAW_LABEL = "draw_label"
DRAW_SAVE = "draw_save"
