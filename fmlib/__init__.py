"""fmlib: the library behind fmrobust, a robustness benchmark for segmentation of fluorescence
microscopy images (after Zhong, Li & Yang, BMC Bioinformatics 2024).
"""

__version__ = "0.1.0"
