"""The pure-Python PTB tokenizer against Stanford CoreNLP 3.4.1's jar.

The pinned outputs below were produced by the jar (``PTBTokenizer -preserveLines
-lowerCase``, each line alone in its file); the cross-checks run the jar itself on
every caption of ../shared/data and on seeded random strings.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest

from densevid.metrics import ptb, tokenize
from densevid.metrics.ptb import PythonPTBTokenizer, tokenize_line, tokenize_lines
from densevid.metrics.tokenize import PTBTokenizer, strip_punctuation

# (line, the jar's output for a file holding just that line)
PINNED = [
    ("Don't stop, they can't and won't.", "do n't stop , they ca n't and wo n't ."),
    (
        "I cannot believe it's gonna rain; we'll see.",
        "i can not believe it 's gon na rain ; we 'll see .",
    ),
    (
        "She's here and I'm there, you're late, he'd go, they've gone.",
        "she 's here and i 'm there , you 're late , he 'd go , they 've gone .",
    ),
    (
        "A well-known man plays a four-year-old's game.",
        "a well-known man plays a four-year-old 's game .",
    ),
    ("The x-ray shows a co-ed and e-mail.", "the x-ray shows a co-ed and e-mail ."),
    (
        "He adds 7 1/2 cups and 3-1/4 spoons.",
        "he adds 7\xa01/2 cups and 3-1/4 spoons .",
    ),
    (
        "Mix 1/2 cup with 2/3 of the water at 12/25/2014.",
        "mix 1/2 cup with 2/3 of the water at 12/25/2014 .",
    ),
    (
        "It costs $5.50, or 1,000 dollars, or -5 degrees, or .5 more.",
        "it costs $ 5.50 , or 1,000 dollars , or -5 degrees , or .5 more .",
    ),
    (
        "The race starts at 3:30 and ends at 10:45.",
        "the race starts at 3:30 and ends at 10:45 .",
    ),
    ('He said "hello" to her.', "he said `` hello '' to her ."),
    ('"Quote at start', "`` quote at start"),
    ('Quote at end"', "quote at end ''"),
    (
        "A \"quoted\" word and 'single' quotes.",
        "a `` quoted '' word and ` single ' quotes .",
    ),
    (
        "The man (in red) holds a [big] {box}.",
        "the man -lrb- in red -rrb- holds a -lsb- big -rsb- -lcb- box -rcb- .",
    ),
    (
        "Wait... then more.... and . . . and ......",
        "wait ... then more ... and ... and ... .",
    ),
    (
        "A man -- then another --- and ---- plus -----.",
        "a man -- then another -- and -- plus ----- .",
    ),
    ("He talks to Mr. Smith and Dr. Jones.", "he talks to mr. smith and dr. jones ."),
    (
        "They live in the U.S. and work in the U.K.",
        "they live in the u.s. and work in the u.k.",
    ),
    (
        "Mrs. Brown met Prof. Green at St. Paul.",
        "mrs. brown met prof. green at st. paul .",
    ),
    ("It is 5 a.m. now, not p.m. later.", "it is 5 a.m. now , not p.m. later ."),
    ("Fish & chips & AT&T and R&D.", "fish & chips & at&t and r&d ."),
    ("He uses and/or km/h and A/B testing.", "he uses and/or km/h and a/b testing ."),
    (
        "Write to foo@bar.com or visit http://www.example.com/page.",
        "write to foo@bar.com or visit http://www.example.com/page .",
    ),
    (
        "See www.google.com and abc.org for more.",
        "see www.google.com and abc.org for more .",
    ),
    ("Oh!!! Really?? Yes?! No...", "oh !!! really ?? yes ?! no ..."),
    (
        "A 3d printer, a 4x4 truck and a 2nd place, 1st, 3rd, 10th.",
        "a 3d printer , a 4x4 truck and a 2nd place , 1st , 3rd , 10th .",
    ),
    (
        "Ice-skating, roller-skating and snow-boarding.",
        "ice-skating , roller-skating and snow-boarding .",
    ),
    ("etc.", "etc. ."),
    ("The man etc. The woman.", "the man etc. . the woman ."),
    ("Jan. 5 and Feb. 10 etc. and so on.", "jan. 5 and feb. 10 etc. and so on ."),
    ("I.", "i."),
    ("a.", "a."),
    ("The plan B.", "the plan b."),
    ("e.g. apples i.e. fruit", "e.g. apples i.e. fruit"),
    (
        "Call (555) 123-4567 or 555-1234 now.",
        "call -lrb-555-rrb-\xa0123-4567 or 555-1234 now .",
    ),
    (
        "It's 50% off, ~3 items ^ 2 | x \\ y.",
        "it 's 50 % off , ~ 3 items ^ 2 | x \\ y.",
    ),
    (
        ":) :-( ;D =P :'( ^_^ (^_^) x_x",
        ":-rrb- :--lrb- ;d =p :'-lrb- ^_^ -lrb-^_^-rrb- x_x",
    ),
    (
        "<b>bold</b> and <br/> and <a href='x y'>",
        "<b> bold </b> and <br/> and <a\xa0href='x\xa0y'>",
    ),
    (
        "&amp; &quot;hi&quot; &lt;tag&gt; caf&eacute; &mdash; a&nbsp;b",
        "& `` hi '' < tag > caf&eacute; -- a b",
    ),
    (
        "'Twas the night, 'tis true, y'all and O'Neil ma'am.",
        "'t was the night , 't is true , y' all and o'neil ma'am .",
    ),
    (
        "Rock 'n' roll in the '90s, 'til 'em 'cause.",
        "rock 'n' roll in the '90s , 'til 'em 'cause .",
    ),
    ("C++ and C# and F# code.", "c++ and c# and f# code ."),
    ("pro- and anti- war, S&P-500 rises.", "pro- and anti- war , s&p-500 rises ."),
    (
        "A hyphen-ated-triple-word and a_b_c underscores.",
        "a hyphen-ated-triple-word and a_b_c underscores .",
    ),
    ("#hashtag and @user mention.", "#hashtag and @user mention ."),
    (
        "**bold** and __under__ and @@ and ##.",
        "** bold ** and __ under __ and @@ and ## .",
    ),
    ("1.800.555.1234 and 12 345 6789.", "1.800.555.1234 and 12\xa0345\xa06789 ."),
    ("The cat sat.", "the cat sat ."),
    (" leading space and trailing space ", "leading space and trailing space"),
    ("\t\ttabs\tinside\t", "tabs inside"),
    ("Fig. 3 and No. 5 and ca. 1900.", "fig. 3 and no. 5 and ca. 1900 ."),
    ("Pty. Ltd. and Co. Ltd. companies.", "pty. ltd. and co. ltd. companies ."),
    ("He scored 3-2 in the 2-1 win.", "he scored 3-2 in the 2-1 win ."),
    ("In 1990-1995 and 1,2,3.", "in 1990-1995 and 1,2,3 ."),
    ("Mr", "mr"),
    ("vs. the world", "vs. the world"),
    ("OK. ok. Ok.", "ok . ok . ok ."),
    ("Hello,world.and,more", "hello , world.and , more"),
    ("A.B.C. D.E.F", "a.b.c. d.e.f"),
    ("what?!what", "what ?! what"),
    ("well... okay", "well ... okay"),
    ("-LRB- -RRB- literal", "-lrb- -rrb- literal"),
    ("x = y + z", "x = y + z"),
    ("a+b c-d e*f g/h", "a + b c-d e * f g/h"),
    ("The 1990s, the '80s and 2000's.", "the 1990s , the '80s and 2000 's ."),
    (
        "file.txt and image.JPG and archive.tar.gz.",
        "file.txt and image.jpg and archive.tar.gz .",
    ),
    (
        "Calif. and Mass. and Wash. and la. and La. stuff",
        "calif. and mass. and wash. and la . and la. stuff",
    ),
    ("", ""),
    ("   ", ""),
    (
        "-------------------------------------------------- ....................",
        "-------------------------------------------------- ... ... ... ...",
    ),
    # the scanner is caseless except inside character classes ("M[ft]g", "[A-Z]")
    ("The MTG. and Mfg. rise.", "the mtg . and mfg. rise ."),
    ("US$5 or us$5 and at&t or AT&T.", "us$ 5 or us $ 5 and at & t or at&t ."),
]
LONG = [
    ("a" * 300, "a" * 300),
    ("1234567890" * 12, "1234567890" * 12),
    ("x." * 40, "x." * 40),
    ("-" * 50 + " " + "." * 20, "-" * 50 + " ... ... ... ..."),
]
# (lines of one file, the jar's output for the first): the end of a line depends on
# how the next line starts.
CONTEXT = [
    (["etc.", " The man"], "etc. ."),
    (["etc.", "the man"], "etc."),
    (["etc.", "The man"], "etc. ."),
    (["etc.", ""], "etc. ."),
    (["in the U.S.", "The man runs"], "in the u.s. ."),
    (["in the U.S.", "the man runs"], "in the u.s."),
    (["U.S.", "", "", "  He runs"], "u.s. ."),
    (["I.", "He runs"], "i ."),
    (["I.", "he runs"], "i."),
    (["Jan.", "5 days"], "jan."),
    (["Fig.", "3 shows"], "fig."),
    (["the U.S.", "<b> x"], "the u.s. ."),
    # a tag whose quoted value goes on: the jar writes the token's line break as is
    (["see <a b='x", "y'> here"], "see <a\xa0b='x"),
]


@pytest.mark.parametrize(("line", "expected"), PINNED + LONG)
def test_pinned_jar_outputs(line: str, expected: str) -> None:
    assert tokenize_line(line) == expected


def test_pinned_cases_cover_the_hard_ones() -> None:
    assert len(PINNED) + len(LONG) >= 60


@pytest.mark.parametrize(("lines", "expected"), CONTEXT)
def test_line_end_depends_on_next_line(lines: list[str], expected: str) -> None:
    assert tokenize_lines(lines)[0] == expected
    following = "\n".join(lines[1:]) + "\n"
    assert tokenize_line(lines[0], following) == expected


def test_tag_over_two_lines_as_the_jar() -> None:
    lines = ["see <a b='x", "y'> here", "end"]
    assert tokenize_lines(lines) == ["see <a\xa0b='x", "y'> here", "end"]


def test_no_break_space_in_fractions_and_line_breaks_rejected() -> None:
    assert tokenize_line("add 7 1/2 cups").split(" ") == ["add", "7\xa01/2", "cups"]
    with pytest.raises(ValueError):
        tokenize_line("two\nlines")


def test_class_interface_cleans_strips_and_caches() -> None:
    tok = PythonPTBTokenizer()
    raw = ['He said "hi" (twice).', "caf\u00e9 au lait\nnow", 'He said "hi" (twice).']
    out = tok(raw)
    assert list(out) == raw[:2]  # distinct sentences, first-seen order
    assert out[raw[0]] == "he said hi -lrb- twice -rrb-"
    assert out[raw[1]] == "caf au lait now"  # non-ASCII and line break -> spaces
    assert tok.cache[raw[0]] == out[raw[0]]
    assert tok([raw[0]]) == {raw[0]: out[raw[0]]}


def _identity(line: str) -> str:
    return line


def _jar_and_python(
    sentences: list[str], java: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The jar's and Python's raw token lines (punctuation kept), through the same
    batching, and the Python class's official token strings."""
    with monkeypatch.context() as m:
        m.setattr(tokenize, "strip_punctuation", _identity)
        m.setattr(ptb, "strip_punctuation", _identity)
        jar = PTBTokenizer(java)(sentences)
        python = PythonPTBTokenizer()(sentences)
    return jar, python, PythonPTBTokenizer()(sentences)


def _assert_same(
    sentences: list[str], java: str, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    jar, python, official = _jar_and_python(sentences, java, monkeypatch)
    assert list(jar) == list(python) == list(official)
    raw_diff = [(s, jar[s], python[s]) for s in jar if jar[s] != python[s]]
    assert not raw_diff, (
        f"{len(raw_diff)} of {len(jar)} {what} tokenised differently from the jar "
        f"(sentence, jar, python), first ones: {raw_diff[:5]}"
    )
    diff = [s for s in jar if strip_punctuation(jar[s]) != official[s]]
    assert not diff, (
        f"{len(diff)} of {len(jar)} {what} differ after punctuation removal, "
        f"first ones: {diff[:5]}"
    )


def _shared_captions(data: Path) -> list[str]:
    sentences: list[str] = []
    for path in sorted((data / "activitynet").glob("*.json")) + sorted(
        (data / "youcook2").glob("*.json")
    ):
        for video in json.loads(path.read_text()).values():
            sentences += video["sentences"]
    for path in sorted((data / "predictions").glob("*.json")):
        for events in json.loads(path.read_text())["results"].values():
            sentences += [e["sentence"] for e in events]
    return list(dict.fromkeys(sentences))


def test_every_shared_caption_as_the_jar(
    shared_data: Path, java: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentences = _shared_captions(shared_data)
    assert len(sentences) > 50_000
    _assert_same(sentences, java, monkeypatch, "shared captions")


def _garbage(rng: random.Random) -> str:
    """Like the official protocol's random strings: no spaces."""
    alphabet = string.ascii_letters + string.digits + string.punctuation
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))


def _spaced(rng: random.Random) -> str:
    """Random ASCII with spaces and many quotes, brackets and periods."""
    alphabet = (
        string.ascii_letters
        + string.digits
        + " " * 8
        + "\"'()[]{}...,-&/@:;!?<>`$#*_=+%~^|\\"
    )
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


_PIECE_TEXT = (
    "&amp; &AMP; &apos; &quot; &lt; &gt; &nbsp; &eacute; &mdash; &#123; <b> </b> <br/>"
    " <!x> (555) 555-1234 +44 1.800.555.1234 7 1/2 3-1/4 12/25/2014 3\\/4"
    " http://www.x.com/a?b=c. www.abc.co.uk/x abc.com a@b.com <a@b.com> @user #tag"
    " U.S. U.S.A. Mr. Dr. etc. Inc. Co. Pty. Ltd No. fig. Jan. Calif. La. la. Ph.D."
    " a.k.a. vs. I. A. e.g. U.S.-U.K. non-U.S. The He the About Her A a don't CAN'T"
    " won`t I'm it's 's 'll y'all O'Neil '90s '90 'til 'em 'cause rock'n'roll cont'd."
    " 'Twas 'tis c'mon Cap'n c'est C++ c# S&P-500 S&Ls AT&T R&D. pro- anti- -LRB- C.D.s"
    " cannot gonna well-known x-ray. e-mail, a-b-c and/or A/B-c 3-D 3d 1,000 -5 +3.5 .5"
    " 3:30 $5 US$ # 50% & abc.txt A.JPG file.tar.gz. :) :-( ;D =P :'( ^_^ (^_^) x_x <3"
    " << >> ... .... ...... -- --- ---- ----- ** \\* __ @@ ## ?! ; : = / \\ | ~ ^ ` ``"
    " '' ' \" ( ) [ ] { } x Y 7 12 1234 word Word WORD"
)
PIECES = _PIECE_TEXT.split(" ") + ["\t", "\x00", "\x7f", "\x01", ". . .", " ", ""]


def _pieces(rng: random.Random) -> str:
    """Runs of the tokens the scanner treats specially, with or without spaces."""
    seps = ["", " ", " ", "  ", "\t"]
    n = rng.randint(0, 7)
    return "".join(rng.choice(PIECES) + rng.choice(seps) for _ in range(n))


TAG_PIECES = ["<a b='x", "y'>", '<p q="', '">', "'", '"', "The", "U.S.", "etc."]
TAG_PIECES += ["x", "<b c='d'>", " ", "<i j=''>"]


def _tags(rng: random.Random) -> str:
    """SGML tags, some of whose quoted values go on over the next lines."""
    n = rng.randint(0, 6)
    return "".join(rng.choice(TAG_PIECES) + rng.choice(["", " "]) for _ in range(n))


_ABBREVIATION_TEXT = (
    "Jan Sept Tues Ariz Az Ark Del Ill Kans La Mass Miss Ore Pa Tex Wash Wisc Inc Cos"
    " Pty Ptys Ppty Ltd Bancorp Jr Bros Ed.D Ph.D Esq etc al seq Bldg Mr Mrs Drs Profs"
    " Ste Cmdr Comdr Supts Mlle vs Alex Wm TREAS Ph Mfg Mtg Dept ca figs prop nos bldg"
    " pp op U.S U.K I A a x non-U.S U.S.-U.K EU-U.S a.k.a"
)
ABBREVIATIONS = _ABBREVIATION_TEXT.split(" ")
_NEXT_TEXT = (
    "About According An A As He Her However If It Mr. Ms. Once One Our She So That The"
    " Their These You <b> the he 5 Ltd lim ltd"
)
NEXT_WORDS = _NEXT_TEXT.split(" ")


def _abbreviations(rng: random.Random) -> str:
    """Abbreviations in any case, then the words that decide on their period."""

    def any_case(word: str) -> str:
        return rng.choice([word, word, word.upper(), word.lower()])

    text = ""
    for _ in range(rng.randint(0, 4)):
        text += any_case(rng.choice(ABBREVIATIONS)) + rng.choice([".", ". ", ".,", ""])
        text += rng.choice(["", " ", "  ", "\t"])
        text += any_case(rng.choice(NEXT_WORDS)) if rng.random() < 0.6 else ""
        text += rng.choice(["", " ", "."])
    return text


@pytest.mark.parametrize("make", [_garbage, _spaced, _pieces, _tags, _abbreviations])
def test_random_strings_as_the_jar(
    make: Callable[[random.Random], str], java: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(f"ptb-{make.__name__}")
    sentences = [make(rng) for _ in range(3000)]
    _assert_same(sentences, java, monkeypatch, f"random strings ({make.__name__})")
