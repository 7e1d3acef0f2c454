import streamlit as st


st.title("Learn deep learning by training real networks on MNIST")
st.write(
    "Every page trains or inspects a real PyTorch multilayer perceptron "
    "(784 → 512 → 256 → 128 → 32 → 10, ReLU, optional BatchNorm), and the Frameworks page its Keras twin. On the Train, Runs, BatchNorm, Frameworks and Draw pages "
    "the numbers come from the runs you start; the Softmax explorer computes its panels from the values you set "
    "(each checked against PyTorch autograd), and its experiment buttons train small models of their own."
)
st.page_link("pages/train.py", label="**Train**: set the hyperparameters, start a run, watch loss and accuracy move live.", icon=":material/monitoring:")
st.page_link("pages/runs.py", label="**Runs & evaluation**: compare runs, rename, delete, download; confusion matrix and worst mistakes.", icon=":material/table_view:")
st.page_link("pages/batchnorm.py", label="**BatchNorm lab**: BN / no-BN twins that differ only in BN, seed noise, activations inside the network, train vs eval mode, learning-rate headroom.", icon=":material/compare:")
st.page_link("pages/tuning.py", label="**Tuning lab**: random vs grid search, the right scale for a learning rate and for Adam's β1, coarse to fine — each a study you run on Optuna, stoppable and resumable.", icon=":material/tune:")
st.page_link("pages/softmax.py", label="**Softmax explorer**: logits → softmax → cross-entropy → gradient ŷ − y; one-hot vs ordinal labels; sigmoid vs 2-way softmax; the double-softmax bug.", icon=":material/functions:")
st.page_link("pages/frameworks.py", label="**Frameworks**: the course's network in PyTorch and in Keras side by side, every default that differs, twin runs with the defaults matched one by one.", icon=":material/code:")
st.page_link("pages/draw.py", label="**Draw a digit**: a trained model classifies your handwriting live, with the MNIST-style preprocessing shown step by step.", icon=":material/draw:")
