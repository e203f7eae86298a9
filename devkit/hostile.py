"""Strings that try to escape every layer user text passes through: the FFmpeg filter graph, the shell, subtitle
markup, paths and URLs. The hostile-string tests and `bench/drawtext_escaping.py` run the same corpus."""

# The corpus is laid out by hand, several short strings a line.
# fmt: off
HOSTILE = [
    "'", '"', "it's", "a:b", "C:\\path\\to\\file", "\\", "\\\\'", "%{pts}", "%{eif:1/0:d}", "%{localtime}",
    "%{e:t*1000}", "[x]", "[0:v]", ";", "a,b;c", "line one\nline two", "crlf\r\nline", "tab\tbetween",
    "textfile=/etc/passwd", ":textfile=/etc/passwd:", "x',drawtext=text='pwned", "[in]nullsink;[x]",
    "enable='0'", "$(touch /tmp/pwned)", "`id`", "; rm -rf /", "| cat /etc/passwd", "مرحبا بالعالم",
    "\u202eevil\u202c שלום", "🎬🔥 émoji", "e\u0301 combining", "{\\an8}Top", "<b>bold</b><font color=\"red\">x</font>",
    "a --> b", "%", "%%", "file:///etc/passwd", "../../etc/passwd", "A" * 1000,
]
# fmt: on
