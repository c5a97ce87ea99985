"""Answering a question: the model, how many chunks it is given, when the offline answer declines."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AnswerSettings(BaseModel):
    """Answers.

    The model that answers, how many chunks it is given, when the offline answer declines.
    """

    llm: Literal["auto", "openai", "extractive"] = Field(
        default="auto", description="auto: the chat model when an OpenAI key is set, else extractive answers."
    )
    chat_model: str = Field(default="gpt-4o-mini", description="OpenAI chat model for answers.")
    chat_temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature of the chat model (0: the same answer)."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Chunks retrieved per question by default.")
    min_answer_score: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Extractive answers: below this similarity the sources are taken not to answer.",
    )
