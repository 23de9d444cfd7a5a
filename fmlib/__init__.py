"""fmlib: the library behind fmrobust, a robustness benchmark for segmentation of fluorescence
microscopy images (after Zhong, Li & Yang, BMC Bioinformatics 2024).
"""

__version__ = "0.1.0"

import warnings

from tqdm import TqdmWarning

# Without ipywidgets, tqdm.auto draws text progress bars in a notebook, which is what papermill and the
# book want; its warning saying so would otherwise head every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
