"""Population count for numba-compiled kernels (metrics and the MIH index share it).

numba has no popcount of its own; this emits LLVM's ``ctpop``, one POPCNT instruction on x86-64.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """Set bits of a uint64 (callable from ``@njit`` code only)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen
