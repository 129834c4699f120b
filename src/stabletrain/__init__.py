"""stabletrain: make neural networks train.

The right initialization for every layer, regularization done right, numerical stability and a
training-health monitor, for PyTorch.

>>> import torch.nn as nn
>>> import stabletrain as st
>>> layer = nn.Linear(128, 64)
>>> _ = st.init.xavier_uniform_(layer.weight, gain="tanh")
>>> round(st.gain("gelu"), 4)
1.5335
"""

from stabletrain import init
from stabletrain.init import Fans, gain, layer_fans

__version__ = "0.1.0"

__all__ = ["Fans", "__version__", "gain", "init", "layer_fans"]
