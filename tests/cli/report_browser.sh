# report_browser.sh — optional: render the report's HTML page (tests/report_fixtures/partial)
# in a real browser, headless Chromium (Debian `chromium`), and check the screenshot is a
# real page: a PNG of the requested size, far from blank (many distinct pixel bytes). Skips,
# saying so, when chromium is not installed.
. tests/lib.sh

T=$TMPD
BROWSER=
for b in chromium chromium-browser; do command -v $b >/dev/null 2>&1 && BROWSER=$b && break; done
if [ -z "$BROWSER" ]; then
    echo "report_browser.sh: skipped: chromium is not installed (apt-get install chromium)"
    finish
    exit 0
fi
$TRACC report tests/report_fixtures/partial -o $T/rep >/dev/null 2>$T/err || { bad "report -o"; cat $T/err; }
# --no-sandbox: the test may run as root; a private profile so no user state is touched
timeout 120 $BROWSER --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$T/profile \
    --window-size=1300,2400 --screenshot=$T/shot.png "file://$(cd $T/rep && pwd)/report.html" >$T/b.out 2>&1
if [ -s $T/shot.png ]; then ok; else bad "no screenshot"; cat $T/b.out; fi
if command -v python3 >/dev/null 2>&1; then
    if python3 - $T/shot.png <<'PY' 2>$T/pyerr; then ok; else bad "screenshot looks blank or wrong"; cat $T/pyerr; fi
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
w, h = struct.unpack('>II', d[16:24])
assert (w, h) == (1300, 2400), (w, h)
pos, idat = 8, b''
while pos < len(d):
    n, t = struct.unpack('>I4s', d[pos:pos + 8])
    if t == b'IDAT': idat += d[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
# a blank page compresses to a few distinct filtered bytes; text, tables and charts give hundreds
distinct = len(set(raw))
assert distinct > 100, distinct
assert len(d) > 50000, len(d)
PY
else ok; fi
finish
