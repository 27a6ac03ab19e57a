"""Stand-in for SynSense's samna (the Speck/DYNAP-CNN hardware SDK), which is not
installable here: PyPI's samna is a stub that fetches the real one from an
unreachable index. It lets the *real* sinabs.backend.dynapcnn code import, so the
DynapcnnNetwork rows are exercised on real sinabs; any samna object is an inert
placeholder, so make_config fails inside sinabs' config builder. Used only in a
subprocess by tests/test_dynapcnn.py; never on the path of other tests.
"""
import sys, types
class _Any:
    def __init__(self, *a, **k): pass
    def __getattr__(self, name): return _Any()
    def __call__(self, *a, **k): return _Any()
class _Mod(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"): raise AttributeError(name)
        if name[:1].isupper():
            return _Any
        full = f"{self.__name__}.{name}"
        m = _Mod(full); m.__path__ = []; sys.modules[full] = m; setattr(self, name, m); return m
class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "samnagui" or name.startswith("samna."):
            import importlib.machinery
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec): m = _Mod(spec.name); m.__path__ = []; return m
    def exec_module(self, m): pass
sys.meta_path.insert(0, _Finder())
_root = _Mod("samna")
def __getattr__(name):
    return getattr(_root, name)
