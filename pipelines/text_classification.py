"""Text classification (support tickets / intents): ingest → validate → train → evaluate → deploy."""

from kfp import dsl

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.train.component import train
from components.validate.component import validate


@dsl.pipeline(
    name="text-classification",
    description="Fine-tunes a MiniLM-L6 sequence classifier on labelled short texts, gated by TFDV validation, "
    "evaluated on a held-out split and smoke-tested behind a KServe model server.",
)
def text_classification(
    source: str,
    text_column: str = "text",
    label_column: str = "category",
    id_column: str = "ticket_id",
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    base_model: str = "minilm",
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 48,
    max_steps: int = -1,
    seed: int = 42,
    smoke_text: str = "my card payment was declined twice",
):
    data = ingest(
        source=source,
        label_column=label_column,
        id_column=id_column,
        required_columns=[text_column],
        split_by="hash",
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    data.set_display_name("ingest")

    checked = validate(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        schema_file=schema_file,
        fail_on_anomalies=fail_on_anomalies,
    )
    checked.set_display_name("validate (TFDV)")

    trained = train(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        text_column=text_column,
        label_column=label_column,
        base_model=base_model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        max_steps=max_steps,
        seed=seed,
    ).after(checked)
    trained.set_display_name("train")

    evaluated = evaluate(
        model=trained.outputs["model"],
        test_data=data.outputs["test_data"],
        text_column=text_column,
        label_column=label_column,
    )
    evaluated.set_display_name("evaluate")

    served = deploy(model=trained.outputs["model"], smoke_text=smoke_text).after(evaluated)
    served.set_display_name("serve locally + smoke request")
