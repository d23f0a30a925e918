"""Every article is processed whatever its language: nine short wire stories written for
these tests, one batch, the real pipeline and workers."""

from __future__ import annotations

import pytest

from newsflow.record import ArticleRecord, Filters
from tests.conftest import Stack
from worker.keyphrases import extract_token_keyphrases
from worker.nlp import detect_language, get_sentencizer
from worker.summarize import split_sentences, summarize

STORIES = {
    "fr": (
        "Le conseil régional d'Occitanie a approuvé mardi un plan de 40 millions d'euros pour "
        "rénover les lignes de train entre Toulouse et Montpellier, a annoncé sa présidente "
        "Claire Dumas.\n\n"
        "Selon Claire Dumas, les travaux commenceront au printemps et dureront deux ans. La "
        "SNCF assurera des bus de remplacement pendant les fermetures de nuit.\n\n"
        "Les associations d'usagers ont salué la décision, mais elles demandent des horaires "
        "plus fiables dès cet été. Le ministre des Transports, Julien Moreau, doit visiter le "
        "chantier en avril."
    ),
    "de": (
        "Die Stadt Leipzig hat am Dienstag einen neuen Plan für den öffentlichen Nahverkehr "
        "vorgestellt. Bürgermeisterin Anna Keller sagte, die Straßenbahn solle künftig alle "
        "fünf Minuten fahren.\n\n"
        "Der Plan kostet nach Angaben der Stadtverwaltung rund 60 Millionen Euro. Die Arbeiten "
        "beginnen im Sommer und sollen zwei Jahre dauern.\n\n"
        "Fahrgastverbände begrüßten die Entscheidung, forderten aber mehr Busse in den "
        "Außenbezirken. Der Stadtrat stimmt im April über die Finanzierung der Straßenbahn ab."
    ),
    "es": (
        "El ayuntamiento de Valencia aprobó el martes un plan para ampliar la red de carriles "
        "bici, según informó la alcaldesa Lucía Romero.\n\n"
        "Romero explicó que las obras comenzarán en mayo y costarán unos 15 millones de euros. "
        "La ciudad espera duplicar el número de ciclistas en tres años.\n\n"
        "Las asociaciones de vecinos celebraron la noticia, aunque pidieron más aparcamientos "
        "seguros para bicicletas. El pleno municipal votará la financiación en junio."
    ),
    "it": (
        "Il comune di Bologna ha approvato martedì un piano per rinnovare le scuole elementari "
        "della città, ha detto il sindaco Marco Bellini.\n\n"
        "Secondo Bellini, i lavori inizieranno a luglio e costeranno circa 30 milioni di euro. "
        "Le lezioni continueranno in edifici temporanei durante i cantieri delle scuole.\n\n"
        "I sindacati degli insegnanti hanno accolto con favore la decisione, ma chiedono più "
        "personale. Il consiglio comunale voterà il bilancio a settembre."
    ),
    "pt": (
        "A câmara municipal do Porto aprovou na terça-feira um plano para renovar o mercado "
        "central da cidade, anunciou o presidente da câmara, Rui Almeida.\n\n"
        "Segundo Almeida, as obras começam em junho e vão custar cerca de 12 milhões de euros. "
        "Os comerciantes vão trabalhar numa tenda provisória durante a renovação do mercado.\n\n"
        "A associação de comerciantes elogiou a decisão, mas pediu apoio financeiro para os "
        "meses de obras. A assembleia municipal vota o orçamento em julho."
    ),
    "ru": (
        "Власти Казани во вторник утвердили план строительства новой линии метро, сообщила "
        "пресс-служба мэрии.\n\n"
        "По словам мэра Игоря Смирнова, работы начнутся летом и продлятся около четырех лет. "
        "Стоимость новой линии метро оценивается в 80 миллиардов рублей.\n\n"
        "Жители районов, через которые пройдет линия, поддержали решение, но попросили "
        "сохранить парки. Городская дума рассмотрит бюджет проекта в апреле."
    ),
    "id": (
        "Pemerintah Kota Bandung pada hari Selasa menyetujui rencana pembangunan jalur bus "
        "baru di pusat kota, kata Wali Kota Dewi Lestari.\n\n"
        "Menurut Dewi Lestari, pembangunan jalur bus akan dimulai pada bulan Juni dan menelan "
        "biaya sekitar 200 miliar rupiah. Pemerintah berharap kemacetan berkurang dalam dua "
        "tahun.\n\n"
        "Warga menyambut baik rencana tersebut, tetapi meminta trotoar yang lebih lebar bagi "
        "pejalan kaki. Dewan kota akan membahas anggaran pada bulan Juli."
    ),
    "zh": (
        "杭州市政府星期二批准了一项扩建地铁网络的计划。市长王建国表示，新的地铁线路将连接机场和火车站。\n\n"
        "据介绍，地铁工程将于今年夏天开工，总投资约为三百亿元。预计新的地铁线路每天可运送五十万名乘客。\n\n"
        "市民普遍欢迎这一计划，但也希望施工期间减少噪音。市人大将在四月审议地铁项目的预算。"
    ),
    "ar": (
        "وافقت محافظة الإسكندرية يوم الثلاثاء على خطة لتجديد الكورنيش وتوسيع الممرات المخصصة "
        "للمشاة، وفقا لما أعلنه المحافظ أحمد منصور.\n\n"
        "وقال منصور إن أعمال تجديد الكورنيش ستبدأ في الصيف وستستمر لمدة عامين بتكلفة تقارب "
        "مليار جنيه. وأضاف أن المقاهي على الكورنيش ستبقى مفتوحة خلال فترة التجديد.\n\n"
        "ورحب السكان بالخطة، لكنهم طالبوا بمزيد من المساحات الخضراء. ومن المقرر أن يناقش "
        "المجلس المحلي الميزانية في أبريل."
    ),
}
UNSPACED = {"zh"}
HEBREW = (
    "עיריית חיפה אישרה ביום שלישי תוכנית להרחבת קווי האוטובוס בעיר, כך מסר ראש העירייה. "
    "העבודות יתחילו בקיץ ויימשכו שנתיים."
)
SENTENCES = {"fr": 5, "de": 6, "es": 5, "it": 5, "pt": 5, "ru": 5, "id": 5, "zh": 6, "ar": 5}


def test_each_story_is_detected_in_its_language_whatever_it_carries() -> None:
    for code, story in STORIES.items():
        assert detect_language(story)[0] == code
    # CLD2 refuses control characters as invalid UTF-8; scraped text carries them
    assert detect_language("\x01" + STORIES["fr"].replace(" ", "\x0b", 3) + "\x9f\ud800")[0] == "fr"
    assert detect_language(HEBREW)[0] == "he"  # CLD2 says "iw", the code before 1989
    assert detect_language("12:30 -- 4:1 !!") == (None, 0.0)
    assert detect_language("ok")[0] is None  # too little text to tell


def test_a_language_without_a_parser_gets_keyphrases_from_its_own_words() -> None:
    for language, text in STORIES.items():
        doc = get_sentencizer(language)(text)
        phrases = [p.text for p in extract_token_keyphrases(doc, top=10)]
        assert phrases, language
        for phrase in phrases:
            assert phrase in text, (language, phrase)
            if language not in UNSPACED:
                assert not doc.vocab[phrase.split()[0].lower()].is_stop, (language, phrase)


def test_every_language_is_split_into_its_sentences() -> None:
    for language, text in STORIES.items():
        sentences = split_sentences(get_sentencizer(language), text)
        assert len(sentences) == SENTENCES[language], (language, [s.text for s in sentences])
        for s in sentences:
            assert text[s.start : s.end] == s.text and s.words > 0 and s.terms, (language, s)
        chosen = summarize(sentences, length=2)
        assert len(chosen) == 2, language


def test_a_tokenizer_that_needs_a_package_falls_back_to_one_that_does_not() -> None:
    assert get_sentencizer("ja").lang == "zh"  # SudachiPy is not installed: by character
    assert get_sentencizer("qq").lang == "xx"  # no such language in spaCy
    japanese = (
        "東京都は火曜日、新しい自転車道の計画を発表した。工事は六月に始まり、二年かかる見込みだ。"
        "住民の多くは計画を歓迎している。"
    )
    sentences = split_sentences(get_sentencizer("ja"), japanese, "ja")
    assert len(sentences) == 3 and all(s.words >= 6 for s in sentences)  # by characters
    assert len(summarize(sentences, length=2)) == 2


@pytest.mark.integration
def test_a_batch_of_nine_languages_is_done(stack: Stack) -> None:
    batch = stack.client.submit(
        [{"id": language, "text": text} for language, text in STORIES.items()],
        name="languages",
    )
    progress = stack.wait(batch.id)
    assert (progress.done, progress.failed) == (len(STORIES), 0)
    records: dict[str, ArticleRecord] = {
        r.external_id or "": r for r in stack.client.results(Filters(batch_id=batch.id))
    }
    for language, record in records.items():
        text = record.text or ""
        assert record.status == "done", (language, record.stages)
        assert record.language == language or (language, record.language) == ("id", "ms")
        assert record.summary.sentences, language
        for s in record.summary.sentences:
            assert text[s.start : s.end] == s.text, language
        assert record.keyphrases, language
        for k in record.keyphrases:
            assert k.text in text, (language, k.text)
        for entity in record.entities:
            for m in entity.mentions:
                assert text[m.start : m.end] == m.text, (language, m)
        extract = record.stages["extract"]
        if language == "fr":
            assert extract.status == "done" and "fr_core_news_sm" in (record.pipeline.model or "")
        else:
            assert extract.status == "skipped", (language, extract)
            assert "no entity model" in (extract.error or ""), language
            assert record.entities == []
    people = {e.name for e in records["fr"].entities if e.label == "PERSON"}
    assert {"Claire Dumas", "Julien Moreau"} <= people, records["fr"].entities
    places = {e.name for e in records["fr"].entities if e.label in ("GPE", "LOC")}
    assert {"Toulouse", "Montpellier"} <= places, records["fr"].entities


def test_models_per_language_come_from_the_defaults_and_newsflow_models() -> None:
    from pydantic import ValidationError

    from newsflow.config import Settings

    defaults = Settings().entity_models()
    assert defaults["fr"] == "fr_core_news_sm" and defaults["en"].startswith("en_core_web_sm")
    models = Settings(models="de=de_core_news_sm, FR=my_french").entity_models()
    assert models["de"] == "de_core_news_sm" and models["fr"] == "my_french"
    with pytest.raises(ValidationError, match="LANGUAGE=MODEL"):
        Settings(models="de_core_news_sm")


@pytest.mark.integration
def test_a_configured_model_that_is_missing_fails_its_language_alone(stack: Stack) -> None:
    stack.stop_worker()
    stack.start_worker(NEWSFLOW_MODELS="de=de_core_news_missing")
    try:
        english = (
            "The harbour of Valmera reopened on Monday after a week-long strike, the port "
            "authority said. Dockworkers accepted a new contract late on Sunday."
        )
        batch = stack.client.submit(
            [{"id": "de-2", "text": STORIES["de"] + " Die Bauarbeiten beginnen im Juni."},
             {"id": "en-2", "text": english}]
        )  # fmt: skip
        progress = stack.wait(batch.id)
        assert (progress.done, progress.failed) == (1, 1)
        records = {r.external_id: r for r in stack.client.results(Filters(batch_id=batch.id))}
        german = records["de-2"].stages
        assert german["extract"].status == "failed"
        assert "cannot load spaCy model 'de_core_news_missing'" in (german["extract"].error or "")
        assert german["summarize"].status == "done"
        assert records["en-2"].status == "done"
    finally:
        stack.stop_worker()
        stack.start_worker()
