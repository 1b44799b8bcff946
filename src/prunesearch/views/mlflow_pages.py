"""Where a reviewer sees a study in the MLflow UI, and what that page is set to show.

A fresh browser opens MLflow 3 in its GenAI mode and shows an experiment's runs collapsed
under the study run, with no metric column and no chart. MLflow keeps a shareable view of the
runs page (columns, sorting, expanded rows, charts) as an experiment tag
`mlflow.sharedViewState.<key>` and opens it from `#/experiments/<id>/runs?viewStateShareKey=
<key>`; `workflowType=machine_learning` in the address switches the UI to Model training
mode. `runs_view` is that view for a study: one row per trial, the objectives and test
accuracy as columns, sorted by the first objective, and a chart view with the trials' last
models on the study's axis against validation accuracy, and the front's picture beside it.
"""

from prunesearch.config.objectives import OBJECTIVES, plot_axis

VIEW_KEY = "prunesearch-front"  # the share key of the view (experiment tag suffix)
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
FRONT_IMAGE_KEY = "pareto_front"  # the study run's image of the front: at step 0, the latest
MODEL_TRAINING = "workflowType=machine_learning"


def _metric(name: str) -> str:
    return f"metrics.`{name}`"


def runs_view(*, parent_run_id: str, objectives: list[str], params: list[str]) -> dict:
    """The runs page's shared view state for a study (MLflow's ExperimentPageUIState and
    search facets, as its UI serialises them)."""
    finals = ["final_val_accuracy",
              *(f"final_{OBJECTIVES[name].column}" for name in objectives
                if name != "val_accuracy"),
              "final_test_accuracy"]
    axis = plot_axis(objectives).column
    section = "prunesearch-front-section"
    return {
        "searchFilter": "", "orderByKey": _metric(f"final_{OBJECTIVES[objectives[0]].column}"),
        "orderByAsc": OBJECTIVES[objectives[0]].direction == "minimize",
        "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": [*(_metric(name) for name in finals),
                            *(f"params.`{name}`" for name in params)],
        "columnOrder": [], "columnWidths": {},
        "runsExpanded": {parent_run_id: True}, "runsPinned": [], "runsHidden": [],
        "runsVisibilityMap": {}, "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": [
            {"uuid": "prunesearch-front-scatter", "type": "SCATTER", "runsCountToCompare": 1000,
             "metricSectionId": section, "deleted": False, "isGenerated": False,
             "displayName": f"each trial's last model: {axis} vs validation accuracy",
             "xaxis": {"key": f"final_{axis}", "type": "METRIC"},
             "yaxis": {"key": "final_val_accuracy", "type": "METRIC"}},
            {"uuid": "prunesearch-front-image", "type": "IMAGE", "runsCountToCompare": 1000,
             "metricSectionId": section, "deleted": False, "isGenerated": False,
             "displayName": "Pareto front (every iteration of every trial)",
             "imageKeys": [FRONT_IMAGE_KEY], "step": 0}],
        "compareRunSections": [{"uuid": section, "name": "Pareto front", "display": True,
                                "isReordered": False, "deleted": False, "isGenerated": False}],
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": False, "groupBy": None,
        "groupsExpanded": {}, "autoRefreshEnabled": True,
    }


def addresses(base: str, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """The pages `prunesearch ui` prints: the trials as rows, the front as a chart, the
    study run (its overview: settings, dense model, the front's table)."""
    runs = f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
    return {"trials": f"{runs}&compareRunsMode=TABLE&{MODEL_TRAINING}",
            "front chart": f"{runs}&compareRunsMode=CHART&{MODEL_TRAINING}",
            "study run": f"{base}/#/experiments/{experiment_id}/runs/{parent_run_id}"
                         f"?{MODEL_TRAINING}"}
