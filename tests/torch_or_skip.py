"""What the PyTorch parity scripts do first: require(name, modules) returns
when the modules import. Otherwise it runs the script again under Debian's
/usr/bin/python3 when that interpreter has them (python3-torch is installed
for the system interpreter, which may not be the python3 first on PATH),
or prints "NAME: SKIP" and exits 77, meson's code for a skipped test."""
import importlib
import os
import subprocess
import sys


def require(name, modules=("torch",)):
    try:
        for module in modules:
            importlib.import_module(module)
        return
    except ImportError:
        pass
    system = "/usr/bin/python3"
    imports = "; ".join(f"import {module}" for module in modules)
    if (os.path.exists(system) and os.path.realpath(system) != os.path.realpath(sys.executable)
            and subprocess.run([system, "-c", imports], capture_output=True).returncode == 0):
        os.execv(system, [system] + sys.argv)
    print(f"{name}: SKIP ({' or '.join(modules)} not importable: python3 -c '{imports}' failed)")
    sys.exit(77)
