"""Test-corpus helper: copy the .py members of wheels into a folder, one subfolder per wheel.

argv: DEST WHEEL...   Prints the number of files written.
"""
import os
import sys
import zipfile

dest = sys.argv[1]
count = 0
for wheel in sys.argv[2:]:
    base = os.path.join(dest, os.path.basename(wheel)[:-4])
    try:
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                name = info.filename
                if not name.endswith(".py") or ".." in name.split("/") or name.startswith("/"):
                    continue
                target = os.path.join(base, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as out:
                    out.write(z.read(info))
                count += 1
    except (zipfile.BadZipFile, OSError) as e:
        sys.stderr.write("skipped %s: %s\n" % (wheel, e))
print(count)
