"""Stanford's PTBTokenizer (CoreNLP 3.4.1) reproduced in Python, without a JVM.

The official evaluation runs ``PTBTokenizer -preserveLines -lowerCase`` over one
cleaned caption per line. That tokenizer is a JFlex scanner: at each position every
rule is tried, the longest match wins (a rule's trailing context counts towards its
length) and ties go to the earlier rule. This module restates those rules as Python
regular expressions, for the ASCII text that ``clean_text`` leaves, and picks among
them the same way. A fast path settles the common tokens (plain words, commas,
full stops) that no other rule can claim.

The scanner reads the whole file as one stream, so a few decisions at the end of a
line look at the next line: "etc." keeps a separate "." when the next line starts
with a space or a capital, and "U.S." does when the next line starts with one of
some sixty words such as "The"; and an SGML tag whose quoted attribute value is
left open runs on into the next line, line break and all, which the jar writes as
it is. ``tokenize_lines`` therefore scans the lines as one text, ``tokenize_line``
takes the text that follows its line, and ``PythonPTBTokenizer`` scans sentences in
the order and batches of ``PTBTokenizer``, so that both give the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

try:  # internal modules, used only to dispatch rules on their first character
    from re import _constants as _sre
    from re import _parser as _sre_parser
except ImportError:  # pragma: no cover
    _sre = _sre_parser = None  # type: ignore[assignment]

from densevid.metrics.tokenize import CachedTokenizer, clean_text, strip_punctuation

NBSP = "\xa0"  # the scanner writes spaces inside fractions, phone numbers, SGML so


def _ci(words: str) -> str:
    """A case-insensitive group: the scanner is caseless, but only outside classes."""
    return f"(?i:{words})"


# --- the scanner's macros, restricted to ASCII input -----------------------------
_SPLET = r"&[aeiouAEIOU]" + _ci("acute|grave|uml") + ";"
_LETTER = rf"(?:[A-Za-z]|{_SPLET})"
_LD = rf"(?:[A-Za-z0-9]|{_SPLET})"
_SPACE = r"[ \t]"
_SPACENL = r"[ \t\n]"
_NAME = r"[A-Za-z][A-Za-z0-9_:.\-]*"
# A quoted attribute value may span lines: the token then holds a line break, which
# the jar writes as it is, so that the lines of its output no longer match its input.
_SGML = (
    r"<(?:[!?][A-Za-z\-][^>\r\n]*"
    rf"|{_NAME}(?:[ ]+(?:{_NAME}[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")|{_NAME}))*[ ]*/?"
    rf"|/{_NAME})[ ]*>"
)
_SENTEND = rf"{_SPACENL}(?:{_SPACENL}|[A-Z]|{_SGML})"
_NUM = r"(?:[0-9]+(?:[.:,][0-9]+)*|(?:[.:,][0-9]+)+)"
_WORD = rf"{_LETTER}{_LD}*(?:[.!?]{_LETTER}{_LD}*)*"
_APOS = "(?:'|" + _ci("&apos;") + ")"
_APOSETC = "(?:'|`|" + _ci("&apos;") + ")"
_HYPHEN = r"[\-_]"
_THING = (
    rf"(?:[dDoOlL]{_APOSETC}[A-Za-z0-9])?[A-Za-z0-9]+"
    rf"(?:{_HYPHEN}(?:[dDoOlL]{_APOSETC}[A-Za-z0-9])?[A-Za-z0-9]+)*"
)
_AMP = "(?:" + _ci("&amp;") + "|[+&])"  # the longer first: Python takes the first
_THINGA = rf"[A-Z]+(?:{_AMP}[A-Z]+)+"
_THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
_ACRO2 = r"[A-Za-z](?:\.[A-Za-z])+"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,]*(?:-(?:{_ACRO2}\.|[A-Za-z0-9]+))+"
_REDAUX = _APOS + "(?:[msdMSD]|" + _ci("re|ve|ll") + ")"
_SREDAUX = _ci("n") + _APOSETC + _ci("t")
_FILENAME_EXT = _ci(
    "bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg"
    "|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip"
)
_FILENAME = rf"{_LD}+(?:\.{_LD}+)*\.{_FILENAME_EXT}"
_ACRO_SPECIAL = (
    _ci("(?:Canada|Sino|Korean|EU|Japan|non)-U\\.S")
    + "|"
    + _ci("U\\.S\\.-(?:U\\.K|U\\.S\\.S\\.R)")
)
_ACRO = rf"(?:[A-Za-z](?:\.[A-Za-z])*|{_ACRO_SPECIAL})"
# Abbreviations: a bracketed first letter in the Java source is case-sensitive.
_ABMONTH = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_ABDAYS = "Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
_ABSTATE_CI = (
    "Ala|Ariz|Calif|Colo|Conn|Ct|Dak|Fla|Ga|Ind|Kans?|Ky|Md|Mich|Minn|Mo|Mont|Neb"
    "|Nev|Okla|Penn|Tenn|Va|Vt|Wisc?|Wyo"
)
_ABSTATE_CS = (
    "A"
    + _ci("z")
    + "|A"
    + _ci("rk")
    + "|D"
    + _ci("el")
    + "|I"
    + _ci("ll")
    + "|L"
    + _ci("a")
    + "|M"
    + _ci("ass")
    + "|M"
    + _ci("iss")
    + "|O"
    + _ci("re")
    + "|P"
    + _ci("a")
    + "|T"
    + _ci("ex")
    + "|W"
    + _ci("ash")
)
_ABCOMP = (
    _ci("Inc|Cos?|Corp|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys")
    + "|"
    + _ci("Pp?t")
    + "[ye]"
    + _ci("s?")
)
_ABBREV1 = (
    "(?:"
    + _ci(
        f"{_ABMONTH}|{_ABDAYS}|{_ABSTATE_CI}|tel|est|ext|sq|Jr|Sr|Bros|Ed\\.D|Ph\\.D"
        "|Blvd|Rd|Esq|etc|al|seq|Bldg"
    )
    + f"|{_ABSTATE_CS}|{_ABCOMP})\\."
)
_ABTITLE = (
    _ci(
        "Mr|Mrs|Ms|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev"
        "|Maj|Sgt|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?"
        "|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc"
    )
    + "|M"
    + _ci("iss")
)
# ABBREV4 as separate alternatives, so that the longest of them wins.
_ABBREV4_ALTS = (
    "(?:"
    + _ABTITLE
    + "|"
    + _ci("vs|Alex|Wm|Jos|Cie|cf|TREAS|Ph|Invt|Elec|Natl|Dept")
    + "|"
    + _ci("M")
    + "[ft]"  # lower case only: the scanner's classes ignore %caseless
    + _ci("g")
    + ")",
    _ci("a\\.k\\.a"),
    _ACRO,
)
_ACRONYM_NEXT = (
    "(?:"
    + "|".join(
        w[0] + _ci(w[1:])
        for w in (
            "About According Additionally After An A As At But Earlier He Her Here "
            "However If In It Last Many More Mr. Ms. Now Once One Other Our She Since "
            "So Some Such That The Their Then There These They This We When While "
            "What Yet You"
        )
        .replace(".", "\\.")
        .split()
    )
    + f"|{_SGML})"
)
_PHONE = (
    r"(?:\([0-9]{2,3}\)[ ]?|(?:\+\+?)?(?:[0-9]{2,4}[\- ])?[0-9]{2,4}[\- ])"
    r"[0-9]{3,4}[\- ]?[0-9]{3,5}"
    r"|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}"
)
_FULLURL = _ci("https?://") + r"[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},\-]"
# In the Java class ",-_" is a range (U+002C to U+005F): digits, capitals, "/", ...
_URLHOST = r"[^ \t\n\f\r\"`'<>|.!?(){}\x2c-\x5f$]"
_LIKELYURL = (
    "(?:"
    + _ci("www")
    + r"\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}"
    + f"|(?:{_URLHOST}+\\.)+"
    + _ci("com|net|org|edu")
    + r")(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},\-])?"
)
_EMAIL = (
    "(?:" + _ci("&lt;") + r"|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}]*@"
    r"(?:[^ \t\n\f\r\"<>|(){}.]+\.)*[^ \t\n\f\r\"<>|(){}.]+"
    "(?:" + _ci("&gt;") + "|>)?"
)
_SMILEY = r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]"
_ASIANSMILEY = (
    r"[\^x=~<>]\.\[\^" + _ci("x") + r"=~<>\]"
    r"|[\-\^x=~<>']_[\-\^x=~<>']"
    r"|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
    r"|\([\^x=~<>']-[\^x=~<>'`]\)"
)
_AMP_RE = re.compile("&amp;", re.IGNORECASE)
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-"}
_BRACKETS.update({"[": "-LSB-", "]": "-RSB-"})
_PARENS = str.maketrans({"(": "-LRB-", ")": "-RRB-"})


# --- what a rule does with its text -------------------------------------------------
def _same(t: str) -> str:
    return t


def _nbsp(t: str) -> str:
    return t.replace(" ", NBSP)


def _amp(t: str) -> str:
    return _AMP_RE.sub("&", t) if "&" in t else t


def _right_quote(t: str) -> str:
    return t.replace("&apos;", "'").replace('"', "''").replace("&quot;", "''")


def _left_quote(t: str) -> str:
    return (
        t.replace("&apos;", "`")
        .replace("'", "`")
        .replace('"', "``")
        .replace("&quot;", "``")
    )


def _phone(t: str) -> str:
    return t.replace(" ", NBSP).translate(_PARENS)


def _parens(t: str) -> str:
    return t.translate(_PARENS)


def _hyphens(t: str) -> str:
    return "--" if 3 <= len(t) <= 4 else t


# How a match moves on: "keep" emits the rule's text and resumes after it; an int n
# emits and resumes after the first n characters (Java's yypushback); "period"
# emits the whole text but resumes at its final period; "acronym" is "period" except
# for one letter + ".", which emits the letter alone; "skip" emits nothing.
@dataclass(frozen=True)
class _Rule:
    """One scanner rule: its alternatives (the longest wins), action and resumption."""

    name: str
    alts: tuple[re.Pattern[str], ...]
    emit: Callable[[str], str] = _same
    resume: str | int = "keep"
    # Python's first match may be shorter than the longest: where this is set, every
    # longer end up to where it stops matching (the most a token can span) is tried.
    exhaustive: re.Pattern[str] | None = None


def _rule(
    name: str,
    *patterns: str,
    context: str | None = None,
    emit: Callable[[str], str] = _same,
    resume: str | int = "keep",
    exhaustive: str | None = None,
) -> _Rule:
    alts = []
    for p in patterns:
        src = f"(?P<r>{p})(?:{context})" if context is not None else p
        alts.append(re.compile(src))
    extent = re.compile(exhaustive) if exhaustive is not None else None
    return _Rule(name, tuple(alts), emit, resume, extent)


# In the scanner's order: ties go to the earlier rule.
_RULES: tuple[_Rule, ...] = (
    _rule("c++", _ci("c") + r"\+\+"),
    _rule("c#", _ci("[cf]#")),
    _rule("cannot", _ci("cannot"), resume=3),
    _rule("'twas", _ci("'twas"), resume=2),
    _rule("'tis", _ci("'tis"), resume=2),
    _rule("gonna", _ci("gonna|gotta|lemme|gimme|wanna"), resume=3),
    _rule("SGML", _SGML, emit=_nbsp),  # one parse at most: greedy is longest
    _rule("SPMDASH", "&" + _ci("MD|mdash|ndash") + ";", emit=lambda t: "--"),
    _rule("SPAMP", _ci("&amp;"), emit=_amp),
    _rule("SPPUNC", "&(?:" + _ci("HT|TL|UR|LR|QC|QL|QR|odq|cdq") + "|#[0-9]+);"),
    _rule("WORD/REDAUX", _WORD, context=_REDAUX),
    _rule("SWORD/SREDAUX", r"[A-Za-z]*[A-MO-Za-mo-z]", context=_SREDAUX),
    _rule("WORD", _WORD),
    _rule(
        "APOWORD",
        _APOS + _ci("n") + _APOS + "?",
        "[lLdDjJ]" + _APOS,
        _ci("Dunkin|somethin|ol") + _APOS,
        _APOS + _ci("em"),
        "[A-HJ-XZn]" + _APOSETC + "[A-Za-z]{2}[A-Za-z]*",
        _APOS + "[2-9]0" + _ci("s"),
        _APOS + _ci("till?"),
        "[A-Za-z][A-Za-z]*[aeiouyAEIOUY]" + _APOSETC + "[aeiouA-Z][A-Za-z]*",
        _APOS + _ci("cause"),
        _ci(r"cont'd\.?"),
        _ci("'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l"),
        _ci("O") + _APOSETC + _ci("o"),
    ),
    _rule("APOWORD2", _ci("y") + _APOS, context="[A-Za-z]"),
    _rule("FULLURL", _FULLURL),
    _rule("LIKELYURL", _LIKELYURL, exhaustive=r"[^ \t\n]*"),
    _rule("EMAIL", _EMAIL, exhaustive=r"[^ \t\n]*"),
    _rule("TWITTER", r"@[a-zA-Z_][a-zA-Z_0-9]*", f"#{_LETTER}+"),
    _rule("REDAUX/", _REDAUX, context="[^A-Za-z]", emit=_right_quote),
    _rule("SREDAUX/", _SREDAUX, context="[^A-Za-z]", emit=_right_quote),
    _rule("DATE", r"[0-9]{1,2}[\-/][0-9]{1,2}[\-/][0-9]{2,4}"),
    _rule("NUMBER", rf"[\-+]?{_NUM}"),
    _rule("FRAC", r"(?:[0-9]{1,4}[\- ])?[0-9]{1,4}\\?/[0-9]{1,4}", emit=_nbsp),
    _rule(
        "TBSPEC",
        _ci(r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-"),
        _ci("S(?:&|&amp;)P-500|S(?:&|&amp;)Ls"),
        _ci("Cap") + _APOS + _ci("n"),
        _ci("c") + _APOS + _ci("est"),
        emit=_amp,
    ),
    _rule("THING3", _THING3),
    _rule("DOLSIGN", r"[A-Z]*\$|#"),
    _rule(
        "ACRONYM",
        rf"{_ACRO}\.",
        context=rf"{_SPACENL}+{_ACRONYM_NEXT}{_SPACENL}",
        resume="acronym",
    ),
    _rule(
        "ABBREV3",
        _ci("(?:ca|figs?|prop|nos?|art|bldg|pp|op)") + r"\.",
        context=rf"{_SPACENL}?[0-9]",
    ),
    _rule("pty.", _ci("(?:pt[eyEY]|co)") + r"\.", context=_SPACE + _ci("ltd|lim")),
    _rule("ABBREV1/SENTEND", _ABBREV1, context=_SENTEND, resume="period"),
    _rule("ABBREV1/2", _ABBREV1, context=r"[\s\S][\s\S]"),
    _rule("ABBREV1", _ABBREV1, resume="period"),
    _rule("ABBREV2", *(a + r"\." for a in _ABBREV4_ALTS)),
    _rule("ABBREV4/", *_ABBREV4_ALTS, context=_SPACE),
    _rule("ACRO/", _ACRO, context=_SPACENL),
    _rule("TBSPEC2/", _APOS + "[0-9][0-9]", context=_SPACENL),
    _rule("FILENAME/", _FILENAME, context=rf"{_SPACENL}|[.?!,]"),
    _rule("WORD./", _WORD + r"\.", context="[,;:]"),
    _rule("PHONE", _PHONE, emit=_phone, exhaustive="[^\n]{0,40}"),
    _rule("DBLQUOT/", '"|' + _ci("&quot;"), context="[A-Za-z0-9$]", emit=_left_quote),
    _rule("DBLQUOT", '"|' + _ci("&quot;"), emit=_right_quote),
    _rule("DEL", "\x7f", resume="skip"),
    _rule("LESSTHAN", "<|" + _ci("&lt;"), emit=lambda t: "<"),
    _rule("GREATERTHAN", ">|" + _ci("&gt;"), emit=lambda t: ">"),
    _rule("SMILEY/", _SMILEY, context="[^A-Za-z0-9]", emit=_parens),
    _rule("ASIANSMILEY", _ASIANSMILEY, emit=_parens),
    _rule("bracket", r"[{}\[\]()]", emit=_BRACKETS.__getitem__),
    _rule("HYPHENS", r"-+", emit=_hyphens),
    _rule("LDOTS", r"\.{3,5}", r"(?:\.[ ]){2,4}\.", emit=lambda t: "..."),
    _rule("FNMARKS", "@+|#+|_+"),
    _rule("ASTS", r"\*+|(?:\\\*){1,3}"),
    _rule("INSENTP", "[,;:]"),
    _rule("?!", "[?!]+"),
    _rule(".", r"\."),
    _rule("=", "="),
    _rule("/", "/"),
    _rule("HTHING./", _HTHING + r"\.", context="[,;:]"),
    _rule("HTHING", _HTHING),
    _rule("THING./", _THING + r"\.", context="[,;:]"),
    _rule("THING", _THING),
    _rule("THINGA./", _THINGA + r"\.", context="[,;:]", emit=_amp),
    _rule("THINGA", _THINGA, emit=_amp),
    _rule("'/", "'", context="[A-Za-z][^ \t\n\r]", emit=_left_quote),
    _rule("REDAUX", _REDAUX, emit=_right_quote),
    _rule("SREDAUX", _SREDAUX, emit=_right_quote),
    _rule("QUOTES", _APOS, "''", "[`]{1,2}", emit=_right_quote),
    _rule("FAKEDUCKFEET", "<<|>>"),
    _rule("MISCSYMBOL", r"[+%&~\^|\\]"),
    _rule("SPACES", r"\x00|[ \t]+", resume="skip"),
    _rule("&nbsp;", _ci("&nbsp;"), resume="skip"),
    _rule("untokenizable", r"[^\n]", resume="skip"),  # Java deletes it with a warning
)


_ALL = frozenset(map(chr, range(128)))


def _first_chars(items: Any, ignore_case: bool) -> tuple[set[str], bool]:
    """The ASCII characters a parsed pattern can start with, and whether it can match
    the empty string (over-approximated where unsure, which only costs time)."""
    c = _sre
    first: set[str] = set()
    for op, av in items:
        chars: set[str]
        nullable = False
        if op is c.LITERAL:
            chars = {chr(av)}
        elif op is c.NOT_LITERAL:
            chars = set(_ALL) - {chr(av)}
        elif op is c.ANY:
            chars = set(_ALL) - {"\n"}
        elif op is c.IN:
            chars = _class_chars(av)
        elif op is c.SUBPATTERN:
            add_flags = av[1]
            chars, nullable = _first_chars(av[3], ignore_case or bool(add_flags & 2))
        elif op is c.BRANCH:
            chars, nullable = set(), False
            for branch in av[1]:
                more, empty = _first_chars(branch, ignore_case)
                chars |= more
                nullable = nullable or empty
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            chars, nullable = _first_chars(av[2], ignore_case)
            nullable = nullable or av[0] == 0
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            chars, nullable = set(), True
        elif op is c.ATOMIC_GROUP:
            chars, nullable = _first_chars(av, ignore_case)
        else:  # anything else: assume it can start anywhere
            chars = set(_ALL)
        if ignore_case:
            chars |= {ch.swapcase() for ch in chars}
        first |= chars
        if not nullable:
            return first, False
    return first, True


def _class_chars(items: Any) -> set[str]:
    """The ASCII members of a parsed character class."""
    c = _sre
    chars: set[str] = set()
    negate = False
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            chars.add(chr(av))
        elif op is c.RANGE:
            chars |= {chr(i) for i in range(av[0], min(av[1], 127) + 1)}
        else:  # a category such as \s: test each character
            pattern = re.compile(
                {
                    c.CATEGORY_SPACE: r"\s",
                    c.CATEGORY_NOT_SPACE: r"\S",
                    c.CATEGORY_DIGIT: r"\d",
                    c.CATEGORY_NOT_DIGIT: r"\D",
                    c.CATEGORY_WORD: r"\w",
                }.get(av, r"[\s\S]")
            )
            chars |= {ch for ch in _ALL if pattern.fullmatch(ch)}
    return set(_ALL) - chars if negate else chars


def _dispatch() -> dict[str, tuple[tuple[_Rule, re.Pattern[str]], ...]]:
    """For each ASCII character, the rules (in order) that can start with it: the
    slow path then tries some 10 of the 94 patterns. Reads the patterns with
    Python's internal regex parser; without it (another Python), every rule."""
    if _sre is None or _sre_parser is None:
        return {}
    table: dict[str, list[tuple[_Rule, re.Pattern[str]]]] = {ch: [] for ch in _ALL}
    for rule in _RULES:
        for pattern in rule.alts:
            chars, nullable = _first_chars(_sre_parser.parse(pattern.pattern), False)
            for ch in _ALL if nullable else chars & _ALL:
                table[ch].append((rule, pattern))
    return {ch: tuple(rules) for ch, rules in table.items()}


_ALL_RULES = tuple((rule, pattern) for rule in _RULES for pattern in rule.alts)
_BY_FIRST = _dispatch()


def _longest(text: str, pos: int) -> tuple[_Rule, int, int]:
    """The rule the scanner applies at ``pos``: (rule, token end, match end)."""
    best: tuple[_Rule, int, int] | None = None
    best_len = 0
    for rule, pattern in _BY_FIRST.get(text[pos], _ALL_RULES):
        m = pattern.match(text, pos)
        if m is None:
            continue
        end = m.end()
        if rule.exhaustive is not None:
            # Try every longer end: Python stops at its first match, JFlex does not.
            stop = rule.exhaustive.match(text, pos).end()  # type: ignore[union-attr]
            for e in range(stop, end, -1):
                longer = pattern.fullmatch(text, pos, e)
                if longer is not None:
                    m, end = longer, e
                    break
        if end - pos > best_len:
            token_end = m.end("r") if "r" in pattern.groupindex else end
            best, best_len = (rule, token_end, end), end - pos
    assert best is not None  # "untokenizable" matches any character but "\n"
    return best


# Common tokens decided without trying every rule: a word of letters followed by a
# space, a line end or a comma/period plus space, and a lone comma or period.
_FAST_TOKEN = r"[A-Za-z]+(?=[ \n]|[,.][ \n])|[,.](?=\n| [^.])| +"
_FAST = re.compile(_FAST_TOKEN)
# A run of such tokens, taken in one step when all its words are in _SAFE.
_FAST_RUN = re.compile(f"(?:{_FAST_TOKEN})+")
_RUN_TOKEN = re.compile(r"[A-Za-z]+|[,.]")
_RUN_WORD_DOT = re.compile(r"([A-Za-z]+)\.")
# Words for which the fast path is not safe: contractions the scanner splits, and
# anything an abbreviation or acronym rule could claim with a following period.
_ASSIMILATIONS = frozenset(["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"])
_ABBREV_WORD = re.compile(
    "|".join(
        [_ABBREV1, _ci("(?:ca|figs?|prop|nos?|art|bldg|pp|op|pt[ey])") + r"\."]
        + [a + r"\." for a in _ABBREV4_ALTS]
    )
)
_plain_words: dict[str, bool] = {}
# Words (lowercased) seen to be one token before a space, a comma or a line end:
# all but the assimilations. Before a period _is_plain decides.
_SAFE: set[str] = {",", "."}
_MAX_CACHE = 1_000_000


def _is_plain(word: str) -> bool:
    """Whether a word of letters stays one token before a period (no abbreviation
    or acronym rule claims it): cached, as captions reuse a small vocabulary."""
    plain = _plain_words.get(word)
    if plain is None:
        plain = not _ABBREV_WORD.fullmatch(word + ".")
        if len(_plain_words) < _MAX_CACHE:
            _plain_words[word] = plain
    return plain


def _scan(buf: str, pos: int, stop: int, out: list[str]) -> None:
    """Append the tokens of ``buf`` that start in [pos, stop) to ``out``, a line
    break as the token "\n" (the scanner's end-of-line token under -preserveLines).

    ``buf`` must go on past ``stop`` as far as the scanner may look ahead.
    """
    fast = _FAST.match
    run = _FAST_RUN.match
    run_from = 0  # runs are tried once: after a failed one, token by token
    while pos < stop:
        if pos >= run_from:
            m = run(buf, pos)
            if m is not None:
                run_from = m.end()
                tokens = _RUN_TOKEN.findall(m.group().lower())
                if _SAFE.issuperset(tokens) and (
                    "." not in buf[pos : run_from + 1]
                    or all(
                        map(_is_plain, _RUN_WORD_DOT.findall(buf, pos, run_from + 1))
                    )
                ):
                    out += tokens
                    pos = run_from
                    continue
        m = fast(buf, pos)
        if m is not None:
            tok = m.group()
            if tok[0] == " ":
                pos = m.end()
                continue
            if len(tok) == 1 and tok in ",.":
                out.append(tok)
                pos += 1
                continue
            end = m.end()
            if tok.lower() not in _ASSIMILATIONS and (
                buf[end] != "." or _is_plain(tok)
            ):
                tok = tok.lower()
                out.append(tok)
                pos = end
                if len(_SAFE) < _MAX_CACHE:
                    _SAFE.add(tok)
                continue
        if buf[pos] == "\n":
            out.append("\n")
            pos += 1
            continue
        rule, token_end, _ = _longest(buf, pos)
        resume = rule.resume
        raw = buf[pos:token_end]
        if resume == "keep":
            out.append(rule.emit(raw).lower())
            pos = token_end
        elif resume == "skip":
            pos = token_end
        elif isinstance(resume, int):
            out.append(raw[:resume].lower())
            pos += resume
        elif resume == "acronym" and len(raw) == 2:
            out.append(raw[0].lower())
            pos += 1
        else:  # "period", "acronym": the final period is scanned again
            out.append(raw.lower())
            pos = token_end - 1


def _write(tokens: list[str]) -> str:
    """Tokens as the jar prints them: a space between two, a line break for "\n"."""
    return (
        " ".join(tokens).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")
    )


def tokenize_line(text: str, following: str | None = None) -> str:
    """One cleaned ASCII line -> the jar's space-joined, lowercased tokens.

    Args:
        text: the line (no line breaks; ``clean_text`` output).
        following: what the file holds after this line's line break (the next
            lines, each ending in a line break); None when the line is the file's
            last. Only a line ending in an abbreviation or acronym depends on it
            (or one that opens an SGML tag's quoted value without closing it).
    """
    if "\n" in text:
        raise ValueError("tokenize_line takes one line; clean_text removes breaks")
    out: list[str] = []
    _scan(text + "\n" + (following or ""), 0, len(text), out)
    return _write(out).split("\n", 1)[0]


def tokenize_lines(lines: Sequence[str]) -> list[str]:
    """Each line's output when the jar reads the lines as one file."""
    buf = "\n".join(lines) + "\n"
    out: list[str] = []
    _scan(buf, 0, len(buf), out)
    return _write(out).split("\n")[: len(lines)]


class PythonPTBTokenizer(CachedTokenizer):
    """Drop-in for ``PTBTokenizer`` that needs no Java, caching every result.

    Sentences are tokenised in the order and batches ``PTBTokenizer`` gives the jar
    (``CachedTokenizer``), so that the few line endings that depend on the next line
    come out the same.
    """

    def _run(self, sentences: list[str]) -> list[str]:
        lines = tokenize_lines([clean_text(s) for s in sentences])
        return [strip_punctuation(t) for t in lines]
