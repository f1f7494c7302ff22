"""Two retrieval baselines the model must be compared with, on the same test questions.

- closed_book_retrieval: answer with the answer of the most similar TRAINING question.
  It knows only what the training Q&A pairs say, like the model without its articles.
- open_book_retrieval: answer with the 2-4-sentence article passage most similar to the
  question. It reads the articles at answer time, so it is an upper reference, not a rival.
Similarity is TF-IDF cosine (scikit-learn).
"""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import linear_kernel

from src import utils


def nearest_k(candidates: list[str], queries: list[str], k: int) -> list[list[int]]:
    """Indices of the k TF-IDF-nearest candidates for each query, nearest first."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
    candidate_vectors = vectorizer.fit_transform(candidates)
    scores = linear_kernel(vectorizer.transform(queries), candidate_vectors)  # rows are L2-normalised
    return (-scores).argsort(axis=1, kind="stable")[:, :k].tolist()


def nearest(candidates: list[str], queries: list[str]) -> list[int]:
    """Index of the TF-IDF-nearest candidate for each query."""
    return [best[0] for best in nearest_k(candidates, queries, 1)]


def closed_book_answers(train_pairs: list[dict[str, Any]], questions: list[str]) -> list[str]:
    best = nearest([p["question"] for p in train_pairs], questions)
    return [train_pairs[i]["answer"] for i in best]


def passages(articles: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(text to match, passage) for every run of 2, 3 or 4 consecutive sentences within
    one article part; the match text adds the article title and section heading."""
    found = []
    for article in articles:
        for heading, text in utils.article_parts(article):
            label = "" if heading == utils.LEAD else heading  # the title already names the lead
            sentences = utils.split_sentences(text)
            for size in (2, 3, 4):
                for start in range(len(sentences) - size + 1):
                    passage = " ".join(sentences[start : start + size])
                    found.append((f"{article['title']} {label} {passage}", passage))
    return found


def open_book_answers(articles: list[dict[str, Any]], questions: list[str]) -> list[str]:
    candidates = passages(articles)
    best = nearest([match for match, _ in candidates], questions)
    return [candidates[i][1] for i in best]
