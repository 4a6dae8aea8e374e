"""sgdp: a packet-level emulator of Huawei Cloud VPC security groups and the dataplane around them."""

from sgdp.errors import ConfigError, InputError, SgdpError

__version__ = "0.1.0"

__all__ = ["ConfigError", "InputError", "SgdpError", "__version__"]
