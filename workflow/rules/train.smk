rule init_tracking:
    output:
        "results/mlflow_uri.txt",
    params:
        uri=get_tracking_uri(),
    conda:
        "../../envs/repro.yaml"
    log:
        "logs/init_tracking.log",
    shell:
        "repro --log {log} init-tracking --uri={params.uri:q} --out {output}"


rule train:
    input:
        dataset=get_run_dataset,
        model=get_run_model,
        tracking="results/mlflow_uri.txt",
    output:
        checkpoint=directory(
            "results/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}/checkpoint"
        ),
        log_csv="results/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}/train_log.csv",
    params:
        run=get_run_config,
        work="results/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}/_resume",
        launcher=get_train_launcher,
        spool=get_tracking_spool_arg,
    conda:
        get_run_env
    log:
        "logs/train/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}.tsv"
    threads: get_resource("train", "cpus")
    # trainings (the long jobs) before evaluations: the short jobs fill the end of the schedule
    priority: 10
    resources:
        gpu=get_resource("train", "gpus"),
        mem_mb=get_resource("train", "mem_mb"),
        runtime=get_resource("train", "runtime_min"),
    shell:
        "{params.launcher} --log-file {log} train --run-config {params.run:q} --dataset-dir {input.dataset} "
        "--model-dir {input.model} --out {output.checkpoint} --log-csv {output.log_csv} "
        '--work-dir {params.work} --tracking-uri "$(cat {input.tracking})" {params.spool}'
