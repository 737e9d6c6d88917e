"""Speed and reproduction benchmarks: python -m benchmarks.<name>."""

try:  # first: the XLA CPU deadlock work-around, before JAX starts (envs/xla_cpu.py)
    from envs.xla_cpu import check_packages
except ImportError as error:  # a user's envs/ shadows ours: name both folders (as check_packages does)
    import os
    import sys
    shadow = getattr(sys.modules.get("envs"), "__file__", None)  # None: our envs failed (e.g. no gymnax)
    ours = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "envs")
    if shadow is None or os.path.dirname(os.path.abspath(shadow)) == ours:
        raise
    raise ImportError(f"curriculax: the package 'envs' was imported from {shadow}, not from curriculax ({ours}): a "
                      "folder named 'envs' in your project or the working directory shadows it (README: 'Package "
                      "names')") from error
check_packages()
