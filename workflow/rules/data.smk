rule fetch_dataset:
    input:
        unpack(get_dataset_job("input")),
    output:
        directory("resources/datasets/{dataset}/{variant}"),
    params:
        name=get_dataset_entry(0),
        spec=get_dataset_entry(1),
        plugin=get_dataset_entry(2),
        generator=get_dataset_job("arg"),
    conda:
        get_dataset_job("env")
    log:
        "logs/fetch_dataset/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/fetch_dataset/{dataset}/{variant}.tsv"
    # the dataset entry's `job.resources` (repro.config.DATASET_RESOURCES by default): a download is
    # one thread; data written by a generator model (an LLM) ask for its GPU there
    threads: get_dataset_job("cpus")
    resources:
        gpu=get_dataset_job("gpus"),
        mem_mb=get_dataset_job("mem_mb"),
        runtime=get_dataset_job("runtime_min"),
    # data gates the warm starts (get_model, also 20): fetch it before any ready training
    priority: 20
    shell:
        "repro --log {log} fetch-dataset --plugin {params.plugin} --name {params.name} "
        "--params {params.spec:q} {params.generator} --out {output}"
