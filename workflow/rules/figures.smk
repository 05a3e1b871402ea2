rule summarize:
    input:
        evals=get_study_evals,
        tracking="results/mlflow_uri.txt",
        reported="paper_figures/reported/{study}.csv",
    output:
        "results/{scale}/{study}/summary.csv",
    conda:
        "../../envs/repro.yaml"
    params:
        allow_mixed="--allow-mixed-provenance" if config.get("allow_mixed_provenance") else "",
    log:
        "logs/summarize/{scale}/{study}.log",
    shell:
        # deferred tracking: the study's spooled training runs go to MLflow first, each once
        (
            'repro --log {log} replay-tracking --tracking-uri "$(cat {input.tracking})" --evals {input.evals} && '
            if tracking_deferred()
            else ""
        )
        + "repro --log {log} summarize --evals {input.evals} --reported {input.reported} --out {output} "
        "{params.allow_mixed}"


rule plot_figure:
    input:
        summary=f"results/{SCALE}/{{study}}/summary.csv",
        train_logs=get_study_train_logs,
        evals=get_study_evals,
        reported="paper_figures/reported/{study}.csv",
    output:
        table=report(
            f"{FIGURES}/{{study}}/{{figure}}.csv",
            category="{study}",
            subcategory=SCALE,
        ),
        text=report(
            f"{FIGURES}/{{study}}/{{figure}}.md",
            category="{study}",
            subcategory=SCALE,
        ),
        image=report(
            f"{FIGURES}/{{study}}/{{figure}}.png",
            category="{study}",
            subcategory=SCALE,
        ),
    conda:
        "../../envs/repro.yaml"
    params:
        plugin=get_study_plugin,
    log:
        f"logs/plot_figure/{SCALE}/{{study}}/{{figure}}.log",
    shell:
        "repro --log {log} plot-figure --plugin {params.plugin} --figure {wildcards.study}/{wildcards.figure} "
        "--summary {input.summary} --train-logs {input.train_logs} --evals {input.evals} "
        "--reported {input.reported} "
        f"--scale {SCALE} --out-dir {FIGURES}/{{wildcards.study}}"
