# Loaded by schemathesis (SCHEMATHESIS_HOOKS=dilux_hooks, set by fuzz-api.sh).
#
# `format: age-recipient` strings: an age X25519 public key is bech32 ("age1" + 32 bytes + a checksum), which
# no pattern can express; the API checks the checksum (a mistyped key is a 400). Generated values are real
# encodings of random keys, so schema-valid policies are accepted.
import schemathesis
from hypothesis import strategies as st

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]


def _polymod(values):
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _recipient(key: bytes) -> str:
    data, acc, bits = [], 0, 0
    for b in key:
        acc, bits = (acc << 8) | b, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    hrp = [ord(c) >> 5 for c in "age"] + [0] + [ord(c) & 31 for c in "age"]
    pm = _polymod(hrp + data + [0] * 6) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return "age1" + "".join(_CHARSET[d] for d in data + checksum)


schemathesis.openapi.format("age-recipient", st.binary(min_size=32, max_size=32).map(_recipient))
