"""The results tables, next to Optuna's in the same database.

One row per (study, engine, trial, split) with the config and every metric as columns, so
the leaderboard can sort and filter in SQL; an epoch history table; an artifacts table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "SCHEMA_VERSION",
    "SPLIT_LENGTH",
    "ArtifactRow",
    "Base",
    "EpochRow",
    "PredictionRow",
    "ReviewRow",
    "SchemaRow",
    "TrialRow",
]

# 2: covid_roc_json; 3: lung focus details; 4: intervals, operating points, folds, stored predictions;
# 5: external validation rows (``split = 'external:NAME'``, up to 64 characters, and external_json);
# 6: reviewers' verdicts (cxr_reviews) and each trial's misclassified validation images (mistakes_json);
# 7: input_region; 8: hidden_lungs_auc
SCHEMA_VERSION = 8
SPLIT_LENGTH = 64


class Base(DeclarativeBase):
    pass


class SchemaRow(Base):
    __tablename__ = "cxr_schema"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def _now() -> datetime:
    return datetime.now(UTC)


class TrialRow(Base):
    __tablename__ = "cxr_trials"
    __table_args__ = (
        UniqueConstraint("study_name", "engine", "trial_number", "split", name="uq_cxr_trial"),
        Index("ix_cxr_trials_rank", "study_name", "covid_sensitivity", "lung_focus", "roc_auc"),
        Index("ix_cxr_trials_rank_op", "study_name", "op_sensitivity", "lung_focus", "covid_auc"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    engine: Mapped[str] = mapped_column(String(32), default="optuna")
    trial_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # COMPLETE, PRUNED, FAIL
    # "val" (validation: the only rows that rank), "test" (measured once at evaluation or export) or
    # "external:NAME" (another labelled dataset, measured by search.evaluate --external or export --external).
    split: Mapped[str] = mapped_column(String(SPLIT_LENGTH), default="val")

    backbone: Mapped[str] = mapped_column(String(64))
    scheme: Mapped[str] = mapped_column(String(16))
    freeze_depth: Mapped[float] = mapped_column(Float)
    head_width: Mapped[int] = mapped_column(Integer)
    dropout: Mapped[float] = mapped_column(Float)
    learning_rate: Mapped[float] = mapped_column(Float)
    augment_strength: Mapped[float] = mapped_column(Float)
    image_size: Mapped[int] = mapped_column(Integer)
    # What part of the X-ray the model sees (cxrdata.REGIONS); also in config_json, a column so
    # the leaderboard can show and filter it. Null only in rows an upgrade could not read.
    input_region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    batch_size: Mapped[int] = mapped_column(Integer)
    max_epochs: Mapped[int] = mapped_column(Integer)
    weights: Mapped[str] = mapped_column(String(1024))
    config_json: Mapped[str] = mapped_column(Text)

    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    balanced_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_sensitivity: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_specificity: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_ppv: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_npv: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    roc_auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    lung_focus: Mapped[float | None] = mapped_column(Float, nullable=True)  # Grad-CAM energy share in the lungs
    lung_focus_std: Mapped[float | None] = mapped_column(Float, nullable=True)
    lung_focus_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)  # / lung area share; 1 = flat map
    pointing_game: Mapped[float | None] = mapped_column(Float, nullable=True)
    lung_focus_n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lung_focus_blank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lung_mask_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # COVID AUC on validation images with the lungs hidden (search._hidden): 0.5, the model cannot
    # tell COVID without the lungs; above, it can, by what lies outside them. Validation rows only.
    hidden_lungs_auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    class_names_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    per_class_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    confusion_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    covid_roc_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # 95% Wilson intervals of the argmax COVID figures.
    covid_sensitivity_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_sensitivity_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_specificity_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    covid_specificity_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The operating point: the COVID threshold chosen on validation for the study's target
    # (e.g. "specificity 0.95") and the figures it gives, with their intervals.
    op_target: Mapped[str | None] = mapped_column(String(32), nullable=True)
    covid_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_sensitivity: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_sensitivity_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_sensitivity_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_specificity: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_specificity_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    op_specificity_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Cross-validation: the number of folds (1: one train/validation split) and, per figure,
    # the standard deviation over folds.
    folds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fold_spread_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # An external row: the dataset it was measured on (path, fingerprint, images) and what was left out.
    external_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Up to ``search.store.MISTAKES`` misclassified validation (or out-of-fold) images at the trial's
    # threshold, each with its Grad-CAM overlay's artifact id: a JSON list (see search.store._mistakes).
    mistakes_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pruned_at_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wall_time_s: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trainable_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dataset_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    split_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    epochs: Mapped[list[EpochRow]] = relationship(back_populates="trial", cascade="all, delete-orphan")
    artifacts: Mapped[list[ArtifactRow]] = relationship(back_populates="trial", cascade="all, delete-orphan")
    predictions: Mapped[list[PredictionRow]] = relationship(back_populates="trial", cascade="all, delete-orphan")


class EpochRow(Base):
    __tablename__ = "cxr_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch", name="uq_cxr_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("cxr_trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    trial: Mapped[TrialRow] = relationship(back_populates="epochs")


class ArtifactRow(Base):
    __tablename__ = "cxr_artifacts"
    __table_args__ = (UniqueConstraint("trial_id", "kind", "filename", name="uq_cxr_artifact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("cxr_trials.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "model", "gradcam", ...
    artifact_id: Mapped[str] = mapped_column(String(256))
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(Integer)
    trial: Mapped[TrialRow] = relationship(back_populates="artifacts")


class PredictionRow(Base):
    """A trial's predicted probabilities on the images it was measured on, compactly.

    One row per trial and kind: ``"val"`` (the validation split) or ``"oof"`` (out-of-fold
    over train+validation with ``--folds``). Ensembles are selected and operating points
    chosen from these, without retraining. Arrays are little-endian bytes: manifest indices
    (int32), labels (int32) and probabilities (float32, ``n x k``, row-major).
    """

    __tablename__ = "cxr_predictions"
    __table_args__ = (UniqueConstraint("trial_id", "kind", name="uq_cxr_prediction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("cxr_trials.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    n: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    indices: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[bytes] = mapped_column(LargeBinary)
    proba: Mapped[bytes] = mapped_column(LargeBinary)
    trial: Mapped[TrialRow] = relationship(back_populates="predictions")


class ReviewRow(Base):
    """A reviewer's verdict on one trial: append-only, the latest per trial counts, history kept.

    Keyed by (study, engine, trial number) rather than a foreign key to ``cxr_trials``: a trial's
    row is replaced when it is recorded again (a worker's retry), and its reviews must outlive that.
    """

    __tablename__ = "cxr_reviews"
    __table_args__ = (Index("ix_cxr_reviews_trial", "study_name", "engine", "trial_number", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_name: Mapped[str] = mapped_column(String(512))
    engine: Mapped[str] = mapped_column(String(32), default="optuna")
    trial_number: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))  # "lungs", "shortcut" or "unsure"
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)  # UTC
