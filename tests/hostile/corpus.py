"""The hostile-input corpus: what an attacker (through events) or an unlucky operator (through
files) can hand the agent. Every reader and every output in `tests/hostile/test_readers.py`
runs through all of it, so a new reader is covered by adding one entry to `READERS` there.
"""

from __future__ import annotations

#: Identity strings (namespaces, owners, containers, paths) as events can carry them.
HOSTILE_NAMES: list[str] = [
    "..",
    ".",
    "../../etc",
    "/etc/cron.d",
    "/",
    "a/../../b",
    "..\\..\\windows",
    "_host",
    "",
    "shop\x00evil",
    "shop\nx",
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H",
    "gnp.\u202eexe",
    "ünïcödé",
    "x" * 300,
    "UPPER",
    "-leading-dash",
    "\ud800",  # a lone surrogate, what undecodable bytes become with surrogateescape
]

#: A "billion laughs": each level references the previous nine times (9^7 strings).
ALIAS_BOMB = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{c}: &{c} [{', '.join(f'*{p}' for _ in range(9))}]\n".encode()
    for p, c in zip("abcdef", "bcdefg", strict=True)
)

#: Hostile file contents, by name. Each reader must answer with its own clear error (or, for
#: content that is merely odd, a normal result), quickly, without a traceback or a hang.
HOSTILE_FILES: dict[str, bytes] = {
    "alias-bomb": ALIAS_BOMB,
    "self-alias": b"a: &x [*x]\n",
    "deep-flow": b"[" * 5000 + b"]" * 5000,
    "deep-block": b"".join(b"  " * i + b"k:\n" for i in range(200)) + b"  " * 200 + b"v\n",
    "huge": b"# padding\n" * (17 * 1024 * 1024 // 10),
    "truncated-yaml": b"apiVersion: kubescape.io/v1\nkind: RuntimeRuleAlertBinding\nspec:\n  rul",
    "truncated-flow": b"{a: [1, 2",
    "invalid-utf8": b"kind: \xff\xfe\xfd\n",
    "nul-bytes": b"kind: a\x00b\n",
    "escape-sequences": b'kind: "\\e]0;pwned\\a\\e[2J"\nmetadata: {name: "\\e[31mred"}\n',
    "bidi": "kind: x\nmetadata: {name: 'gnp.\u202eexe'}\n".encode(),
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "scalar": b"just a string\n",
    "list-top": b"- 1\n- 2\n",
    "deep-json": b'{"a":' * 3000 + b"1" + b"}" * 3000,
}
