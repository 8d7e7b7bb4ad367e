"""brushwork: neural style transfer (artistic, photorealistic, fast) and tools to see inside.

The Python API mirrors the command line: each function takes paths, Pillow images or
tensors and returns a Pillow image.
"""

from brushwork.artistic import StyleOptions, stylize
from brushwork.errors import BrushworkError

__all__ = ["BrushworkError", "StyleOptions", "stylize"]
