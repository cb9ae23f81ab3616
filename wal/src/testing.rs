//! Entry points shared by the fuzz targets and their corpus tests.
