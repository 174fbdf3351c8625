"""KFP definition of train (image `train`); the logic is in text_trainer.py."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    text_column: str = "text",
    label_column: str = "label",
    base_model: str = "minilm",
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 64,
    max_steps: int = -1,
    warmup_ratio: float = 0.1,
    seed: int = 42,
    num_threads: int = 0,
    num_processes: int = 0,
    gradient_accumulation_steps: int = 1,
    precision: str = "auto",
    compile: bool = False,
    checkpoint_every: int = 0,
    checkpoint_dir: str = "",
    early_stopping_patience: int = 0,
    early_stopping_metric: str = "eval_loss",
    hyperparameters: str = "",
):
    """Fine-tune a text classifier on Parquet train/eval splits (text and label columns) with a plain torch loop.

    base_model is "minilm" (packaged MiniLM-L6 weights), "tiny" (a random two-layer BERT, for tests) or a
    local Hugging Face model directory. Data-parallel over every visible GPU (torchrun, NCCL), or over
    num_processes CPU processes (gloo); batch_size is the global batch. With checkpoint_every > 0 a restarted
    task resumes from its latest checkpoint (checkpoint_dir, default: a sibling of the model output). The
    model output is a Hugging Face directory (safetensors, tokenizer, id2label/label2id, label_map.json);
    metrics holds the final eval loss, accuracy and macro F1 and the training throughput; curves plots train
    loss per step and eval metrics per epoch. hyperparameters, a JSON object such as tune's best_parameters,
    overrides the parameters it names.
    """
    from components.train.text_trainer import TrainConfig, run_training

    config = TrainConfig(
        train_path=train_data.path,
        eval_path=eval_data.path,
        model_dir=model.path,
        curves_path=curves.path,
        text_column=text_column,
        label_column=label_column,
        base_model=base_model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        max_steps=max_steps,
        warmup_ratio=warmup_ratio,
        seed=seed,
        num_threads=num_threads,
        num_processes=num_processes,
        gradient_accumulation_steps=gradient_accumulation_steps,
        precision=precision,
        compile=compile,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=checkpoint_dir or None,
        early_stopping_patience=early_stopping_patience,
        early_stopping_metric=early_stopping_metric,
    )
    result = run_training(config.with_overrides(hyperparameters) if hyperparameters else config)
    model.metadata.update(result.model_metadata)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
