"""What the lessons compute: softmax maths, the BatchNorm lab, evaluation, tuning, frameworks."""
