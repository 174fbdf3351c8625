"""The Experiment builder: its output passes Katib's v1beta1 API schema and every webhook rule, the webhook
checker catches each rule being broken, and the committed example manifest is the builder's output."""

import copy
import json
import re
import shlex

import pytest
import yaml

from components.tune import experiment as experiment_module
from components.tune.experiment import TRIAL_CONTAINER, TrialSettings, build_experiment, trial_config
from components.tune.search_space import SearchSpaceError, parse_search_space
from components.tune.tests import katib_schema
from components.tune.webhook import webhook_violations
from kfp_mlops import images
from kfp_mlops.paths import PROJECT_ROOT

EXAMPLE_SPACE = PROJECT_ROOT / "components" / "tune" / "example_search_space.json"
MANIFEST = PROJECT_ROOT / "manifests" / "katib" / "experiment-text.yaml"
MANIFEST_ARGS = [
    "--search-space",
    "components/tune/example_search_space.json",
    "--name",
    "text-classifier-tune",
    "--train-path",
    "gs://example-bucket/text/train.parquet",
    "--eval-path",
    "gs://example-bucket/text/eval.parquet",
    "--settings",
    '{"base_model": "minilm", "epochs": 3, "max_length": 64}',
    "--out",
    "manifests/katib/experiment-text.yaml",
]
needs_swagger = pytest.mark.skipif(
    not katib_schema.KATIB_SWAGGER.exists(),
    reason=f"needs Katib's swagger.json at {katib_schema.KATIB_SWAGGER} (present in CI)",
)

SPACES = {
    "example": json.loads(EXAMPLE_SPACE.read_text()),
    "grid over ints and a categorical": {
        "objective": {"type": "minimize", "objectiveMetricName": "eval_loss", "additionalMetricNames": []},
        "algorithm": {"algorithmName": "grid"},
        "parameters": [
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}},
            {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ["tiny", "minilm"]}},
        ],
        "maxTrialCount": 4,
        "parallelTrialCount": 4,
        "maxFailedTrialCount": 0,
    },
    "cmaes": {
        "objective": {"type": "maximize", "objectiveMetricName": "eval_accuracy"},
        "algorithm": {"algorithmName": "cmaes", "algorithmSettings": [{"name": "sigma", "value": "0.5"}]},
        "parameters": [
            {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-3"}},
            {"name": "max_length", "parameterType": "int", "feasibleSpace": {"min": "32", "max": "128", "step": "32"}},
        ],
        "maxTrialCount": 6,
    },
}


def trial_settings(**overrides):
    values = {
        "train_path": "gs://bucket/train.parquet",
        "eval_path": "gs://bucket/eval.parquet",
        "settings": {"base_model": "minilm", "epochs": 3, "batch_size": 32, "text_column": "body"},
        "image": "registry.example.com/kfp-mlops-train:1.0",
    }
    return TrialSettings(**{**values, **overrides})


def example_experiment():
    return build_experiment(parse_search_space(SPACES["example"]), "text-tune", trial_settings(), seed=7)


def katib_substitution(experiment, assignments):
    """The trial Job as Katib makes it: placeholders replaced in the JSON text of the trialSpec."""
    template = experiment["spec"]["trialTemplate"]
    text = json.dumps(template["trialSpec"])
    for trial_parameter in template["trialParameters"]:
        text = text.replace(
            f"${{trialParameters.{trial_parameter['name']}}}", assignments[trial_parameter["reference"]]
        )
    return json.loads(text)


def trainer_config(job):
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:4] == ["python", "-m", "components.train.text_trainer", "--config"]
    return json.loads(command[4])


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("trial", [trial_settings(), trial_settings(gpus=1, cpu="500m", service_account="tuner")])
def test_built_experiments_pass_the_webhook_rules(name, trial):
    experiment = build_experiment(parse_search_space(SPACES[name]), "text-tune", trial, namespace="team-a", seed=1)
    assert webhook_violations(experiment) == []


@needs_swagger
@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("trial", [trial_settings(), trial_settings(gpus=1, cpu="500m", service_account="tuner")])
def test_built_experiments_pass_katib_s_api_schema(name, trial):
    experiment = build_experiment(parse_search_space(SPACES[name]), "text-tune", trial, namespace="team-a", seed=1)
    assert katib_schema.errors(experiment) == []


@needs_swagger
def test_the_schema_resolves_every_reference_and_catches_what_katib_s_go_types_would_drop_or_refuse():
    assert katib_schema.unresolved_references() == []
    experiment = example_experiment()
    misspelt = copy.deepcopy(experiment)
    misspelt["spec"]["parameters"][0]["feasiblespace"] = misspelt["spec"]["parameters"][0].pop("feasibleSpace")
    numeric = copy.deepcopy(experiment)
    numeric["spec"]["parameters"][0]["feasibleSpace"]["min"] = 1e-5
    count_as_text = copy.deepcopy(experiment)
    count_as_text["spec"]["maxTrialCount"] = "12"
    assert any("'feasiblespace' was unexpected" in e for e in katib_schema.errors(misspelt))
    assert katib_schema.errors(numeric) == ["spec.parameters.0.feasibleSpace.min: 1e-05 is not of type 'string'"]
    assert katib_schema.errors(count_as_text) == ["spec.maxTrialCount: '12' is not of type 'integer'"]


def test_the_trial_job_runs_the_trainer_with_the_trial_s_values_after_katib_s_substitution():
    experiment = example_experiment()
    assert [p["name"] for p in experiment["spec"]["trialTemplate"]["trialParameters"]] == [
        "learning_rate",
        "batch_size",
        "warmup_ratio",
    ]
    job = katib_substitution(experiment, {"learning_rate": "3.5e-05", "batch_size": "16", "warmup_ratio": "0.1"})
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == TRIAL_CONTAINER == experiment["spec"]["trialTemplate"]["primaryContainerName"]
    assert container["image"] == "registry.example.com/kfp-mlops-train:1.0"
    assert trainer_config(job) == {
        "train_path": "gs://bucket/train.parquet",
        "eval_path": "gs://bucket/eval.parquet",
        "model_dir": "/tmp/trial/model",
        "base_model": "minilm",
        "epochs": 3,
        "text_column": "body",
        "num_threads": 2,
        "learning_rate": 3.5e-05,
        "batch_size": 16,  # tuned: the fixed 32 is replaced, and the value is a JSON integer
        "warmup_ratio": 0.1,
    }
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_tuned_string_field_is_quoted_and_the_cluster_settings_reach_the_pod():
    space = parse_search_space(SPACES["grid over ints and a categorical"])
    trial = trial_settings(cpu="500m", memory="4Gi", gpus=1, service_account="tuner")
    experiment = build_experiment(space, "grid", trial)
    job = katib_substitution(experiment, {"epochs": "2", "base_model": "tiny"})
    config = trainer_config(job)
    assert (config["epochs"], config["base_model"]) == (2, "tiny")
    assert "num_threads" not in config  # a fractional CPU request leaves torch's default
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tuner"
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "4Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": 1},
    }
    assert job["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert "algorithmSettings" not in experiment["spec"]["algorithm"]  # grid takes no random_state


def test_the_seed_becomes_random_state_unless_the_space_sets_one():
    settings = example_experiment()["spec"]["algorithm"]["algorithmSettings"]
    assert settings == [{"name": "n_startup_trials", "value": "4"}, {"name": "random_state", "value": "7"}]
    source = {
        **SPACES["example"],
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
    }
    experiment = build_experiment(parse_search_space(source), "text-tune", trial_settings(), seed=7)
    assert experiment["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "3"}]


def test_metric_strategies_are_written_for_every_metric():
    objective = example_experiment()["spec"]["objective"]
    assert objective["metricStrategies"] == [
        {"name": "eval_macro_f1", "value": "max"},
        {"name": "eval_accuracy", "value": "max"},
        {"name": "eval_loss", "value": "min"},
    ]


def test_unknown_trainer_settings_are_refused_before_building():
    with pytest.raises(SearchSpaceError, match="dropout: not a text trainer setting"):
        trial_config(parse_search_space(SPACES["example"]), trial_settings(settings={"dropout": 0.1}))


def _mutate(change):
    def mutated():
        experiment = example_experiment()
        change(experiment)
        return experiment

    return mutated


def _spec(**values):
    return _mutate(lambda e: e["spec"].update(values))


def _drop(*path):
    def change(experiment):
        node = experiment
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return _mutate(change)


def _template(**values):
    return _mutate(lambda e: e["spec"]["trialTemplate"].update(values))


def _job(change):
    return _mutate(lambda e: change(e["spec"]["trialTemplate"]["trialSpec"]))


def _parameter(index, **values):
    return _mutate(lambda e: e["spec"]["parameters"][index].update(values))


def _space(index, **values):
    return _mutate(lambda e: e["spec"]["parameters"][index]["feasibleSpace"].update(values))


def _trial_parameter(index, **values):
    return _mutate(lambda e: e["spec"]["trialTemplate"]["trialParameters"][index].update(values))


def _rename(name):
    return _mutate(lambda e: e["metadata"].update(name=name))


def _configmap(**values):
    def change(experiment):
        template = experiment["spec"]["trialTemplate"]
        del template["trialSpec"]
        template["configMap"] = values

    return _mutate(change)


BROKEN_RULES = {
    "name with upper case": (_rename("Text-tune"), "metadata.name: 'Text-tune' must start with a lowercase letter"),
    "name ending in a dash": (_rename("text-tune-"), "metadata.name: 'text-tune-' must start"),
    "name starting with a digit": (_rename("1-text"), "metadata.name: '1-text' must start"),
    "name over 40 characters": (_rename("t" * 41), "is longer than 40 characters"),
    "maxTrialCount zero": (
        _spec(maxTrialCount=0, parallelTrialCount=0, maxFailedTrialCount=0),
        "spec.maxTrialCount: 0 must be greater than 0",
    ),
    "parallelTrialCount zero": (_spec(parallelTrialCount=0), "spec.parallelTrialCount: 0 must be greater than 0"),
    "maxFailedTrialCount negative": (
        _spec(maxFailedTrialCount=-1),
        "spec.maxFailedTrialCount: -1 must not be less than 0",
    ),
    "maxFailedTrialCount above maxTrialCount": (
        _spec(maxFailedTrialCount=13),
        "spec.maxFailedTrialCount: 13 must be at most spec.maxTrialCount",
    ),
    "parallelTrialCount above maxTrialCount": (
        _spec(parallelTrialCount=13),
        "spec.parallelTrialCount: 13 must be at most spec.maxTrialCount",
    ),
    "no parameters": (_drop("spec", "parameters"), "spec: spec.parameters or spec.nasConfig must be given"),
    "parameters and nasConfig": (
        _spec(nasConfig={"graphConfig": {"numLayers": 2}}),
        "only one of spec.parameters and spec.nasConfig",
    ),
    "no objective": (_drop("spec", "objective"), "spec.objective: must be given"),
    "no objective type": (_drop("spec", "objective", "type"), "spec.objective.type: None must be minimize or maximize"),
    "no objective metric": (
        _drop("spec", "objective", "objectiveMetricName"),
        "spec.objective.objectiveMetricName: must be given",
    ),
    "objective metric among the additional ones": (
        _mutate(lambda e: e["spec"]["objective"]["additionalMetricNames"].append("eval_macro_f1")),
        "spec.objective.additionalMetricNames: must not contain the objective metric 'eval_macro_f1'",
    ),
    "no algorithm": (_drop("spec", "algorithm"), "spec.algorithm: must be given"),
    "no algorithm name": (_drop("spec", "algorithm", "algorithmName"), "spec.algorithm.algorithmName: must be given"),
    "unknown algorithm": (
        _mutate(lambda e: e["spec"]["algorithm"].update(algorithmName="anneal")),
        "'anneal' is not a known algorithm",
    ),
    "unknown early stopping": (
        _mutate(lambda e: e["spec"]["earlyStopping"].update(algorithmName="asha")),
        "spec.earlyStopping.algorithmName: 'asha'",
    ),
    "unknown resume policy": (_spec(resumePolicy="Always"), "spec.resumePolicy: 'Always' is not one of"),
    "unknown parameter type": (
        _parameter(0, parameterType="float"),
        "spec.parameters[0].parameterType: 'float' is not supported",
    ),
    "unknown distribution": (
        _space(0, distribution="exponential"),
        "spec.parameters[0].feasibleSpace.distribution: 'exponential'",
    ),
    "no feasible space": (
        _drop("spec", "parameters", 0, "feasibleSpace"),
        "spec.parameters[0].feasibleSpace: must be given",
    ),
    "double without max": (
        _drop("spec", "parameters", 0, "feasibleSpace", "max"),
        "spec.parameters[0].feasibleSpace.max: feasibleSpace.max and .min",
    ),
    "double with a list": (
        _space(0, list=["1e-4"]),
        "spec.parameters[0].feasibleSpace.list: is not supported for parameterType double",
    ),
    "discrete with a step": (
        _space(1, step="16"),
        "spec.parameters[1].feasibleSpace: .max, .min and .step are not supported",
    ),
    "no trial template": (_drop("spec", "trialTemplate"), "spec.trialTemplate: must be given"),
    "no primary container": (
        _drop("spec", "trialTemplate", "primaryContainerName"),
        "spec.trialTemplate.primaryContainerName: must be given",
    ),
    "no conditions for a kind Katib does not default": (
        _mutate(
            lambda e: (
                e["spec"]["trialTemplate"].pop("successCondition"),
                e["spec"]["trialTemplate"]["trialSpec"].update(kind="Workflow", apiVersion="argoproj.io/v1alpha1"),
            )
        ),
        "successCondition and failureCondition must be given for a trialSpec of kind 'Workflow'",
    ),
    "no trial parameters": (
        _drop("spec", "trialTemplate", "trialParameters"),
        "spec.trialTemplate.trialParameters: must be given",
    ),
    "no trial spec nor config map": (
        _drop("spec", "trialTemplate", "trialSpec"),
        "trialSpec or spec.trialTemplate.configMap must be given",
    ),
    "trial spec and config map": (
        _template(configMap={"configMapName": "a", "configMapNamespace": "b", "templatePath": "c"}),
        "only one of spec.trialTemplate.trialSpec and spec.trialTemplate.configMap",
    ),
    "config map without its template path": (
        _configmap(configMapName="templates", configMapNamespace="kubeflow"),
        "spec.trialTemplate.configMap: configMapName, configMapNamespace and templatePath must be given",
    ),
    "trial parameter without a reference": (
        _trial_parameter(0, reference=""),
        "trialParameters[0]: name and reference must be given",
    ),
    "trial parameter name with braces": (_trial_parameter(0, name="{lr}"), "the name must not hold '{' or '}'"),
    "repeated trial parameter name": (
        _trial_parameter(1, name="learning_rate"),
        "trialParameters[1].name: 'learning_rate' is given twice",
    ),
    "repeated trial parameter reference": (
        _trial_parameter(1, reference="learning_rate"),
        "trialParameters[1].reference: 'learning_rate' is given twice",
    ),
    "reference to no parameter": (_trial_parameter(0, reference="lr"), "trialParameters[0].reference: 'lr' is neither"),
    "trial parameter not used in the template": (
        _mutate(
            lambda e: e["spec"]["trialTemplate"]["trialParameters"].append(
                {"name": "seed", "reference": "${trialSpec.Name}"}
            )
        ),
        "trialParameters[3].name: ${trialParameters.seed} is not used",
    ),
    "placeholder without a trial parameter": (
        _mutate(lambda e: e["spec"]["trialTemplate"]["trialParameters"].pop()),
        "${trialParameters.warmup_ratio} in the trialSpec are not in trialParameters",
    ),
    "trial spec with a name": (
        _job(lambda job: job.update(metadata={"name": "trial"})),
        "name and namespace must be left out",
    ),
    "trial spec with a namespace": (
        _job(lambda job: job.update(metadata={"namespace": "a"})),
        "name and namespace must be left out",
    ),
    "trial spec without a kind": (_job(lambda job: job.pop("kind")), "apiVersion and kind must be given"),
    "trial spec without an apiVersion": (_job(lambda job: job.pop("apiVersion")), "apiVersion and kind must be given"),
    "unknown metrics collector": (
        _mutate(lambda e: e["spec"]["metricsCollectorSpec"]["collector"].update(kind="Stdout")),
        "collector.kind: 'Stdout'",
    ),
}


@pytest.mark.parametrize("broken, message", BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_the_webhook_checker_catches_each_rule_being_broken(broken, message):
    violations = webhook_violations(broken())
    assert any(message in violation for violation in violations), violations


def test_trial_metadata_references_are_allowed():
    experiment = example_experiment()
    experiment["spec"]["trialTemplate"]["trialParameters"].append(
        {"name": "trialName", "reference": "${trialSpec.Name}"}
    )
    experiment["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"trial": "${trialParameters.trialName}"}}
    experiment["spec"]["trialTemplate"]["trialParameters"].append(
        {"name": "team", "reference": "${trialSpec.Labels[team]}"}
    )
    experiment["spec"]["trialTemplate"]["trialSpec"]["metadata"]["labels"]["team"] = "${trialParameters.team}"
    assert webhook_violations(experiment) == []


def test_the_committed_manifest_is_the_builder_s_output(tmp_path, monkeypatch):
    monkeypatch.delenv(images.REGISTRY_ENV, raising=False)
    monkeypatch.chdir(PROJECT_ROOT)
    out = tmp_path / "experiment.yaml"
    assert experiment_module.main([*MANIFEST_ARGS[:-1], str(out)]) == 0
    regenerate = shlex.join(["python", "-m", "components.tune.experiment", *MANIFEST_ARGS])
    expected = out.read_text().replace(str(out), "manifests/katib/experiment-text.yaml")
    assert MANIFEST.read_text() == expected, f"{MANIFEST} is stale; regenerate it from the project root: {regenerate}"
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == images.image("train")
    assert webhook_violations(manifest) == []


def test_the_manifest_reads_the_same_with_kubernetes_yaml_1_2_number_rules():
    class Yaml12Loader(yaml.SafeLoader):
        """PyYAML's YAML 1.1 rules plus YAML 1.2's floats, such as 1e-5, which Kubernetes reads as numbers."""

    float_1_2 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
    Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_1_2, list("-+0123456789."))
    assert yaml.load("min: 1e-5", Loader=Yaml12Loader) == {"min": 1e-5}  # the case a plain safe_dump leaves bare
    assert yaml.load(MANIFEST.read_text(), Loader=Yaml12Loader) == yaml.safe_load(MANIFEST.read_text())


def test_the_command_line_reports_a_bad_search_space(tmp_path, capsys):
    bad = tmp_path / "space.json"
    bad.write_text(json.dumps({**SPACES["example"], "maxTrialCount": 0}))
    code = experiment_module.main(["--search-space", str(bad), "--name", "x", "--train-path", "a", "--eval-path", "b"])
    assert code == 1
    assert "maxTrialCount: must be at least 1" in capsys.readouterr().err
