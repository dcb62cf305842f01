"""A Python prelude that makes any import of torch fail like a missing package, as on an edge board or a CI
runner without torch: the tests that run code after it prove that code imports no torch."""

BLOCK_TORCH = (
    "import sys, importlib.abc\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\")\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)
