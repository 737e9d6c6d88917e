"""Runnable experiments: python -m experiments.<name>."""

try:  # first: the XLA CPU deadlock work-around, before JAX starts (envs/xla_cpu.py)
    from envs.xla_cpu import check_packages
except ImportError as error:
    raise ImportError("curriculax: cannot import envs.xla_cpu; is a folder named 'envs' in your project "
                      "shadowing curriculax's envs package? (README: 'Package names')") from error
check_packages()
