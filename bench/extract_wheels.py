"""Benchmark helper: unpack whole wheels (code, .dist-info, data), one subfolder per wheel.

argv: DEST WHEEL...   Each wheel goes to DEST/<wheel file name without .whl>.
"""
import os
import sys
import zipfile

dest = sys.argv[1]
for wheel in sys.argv[2:]:
    target = os.path.join(dest, os.path.basename(wheel)[:-4])
    try:
        with zipfile.ZipFile(wheel) as z:
            # extractall drops absolute paths and ".." parts, so members stay inside target.
            z.extractall(target)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        sys.stderr.write("skipped %s: %s\n" % (wheel, e))
