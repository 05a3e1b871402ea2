rule evaluate:
    input:
        dataset=get_run_dataset,
        checkpoint="results/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}/checkpoint",
        model=get_run_model,
        tracking="results/mlflow_uri.txt",
    output:
        "results/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}/eval.json",
    params:
        run=get_run_config,
    conda:
        get_run_env
    log:
        "logs/evaluate/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{scale}/{study}/{benchmark}/{model}/{method}/seed{seed}.tsv"
    threads: get_resource("evaluate", "cpus")
    resources:
        gpu=get_resource("evaluate", "gpus"),
        mem_mb=get_resource("evaluate", "mem_mb"),
        runtime=get_resource("evaluate", "runtime_min"),
    shell:
        "repro --log {log} evaluate --run-config {params.run:q} --dataset-dir {input.dataset} "
        "--checkpoint {input.checkpoint} --model-dir {input.model} --out {output}"
        # live tracking: the evaluated metrics join the training's MLflow run (deferred: summarize
        # sends them with the spooled run)
        + ("" if tracking_deferred() else ' --tracking-uri "$(cat {input.tracking})"')
