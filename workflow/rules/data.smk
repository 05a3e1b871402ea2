rule fetch_dataset:
    output:
        directory("resources/datasets/{dataset}/{variant}"),
    params:
        name=get_dataset_entry(0),
        spec=get_dataset_entry(1),
        plugin=get_dataset_entry(2),
    conda:
        "../../envs/repro.yaml"
    log:
        "logs/fetch_dataset/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/fetch_dataset/{dataset}/{variant}.tsv"
    # data gates the warm starts (get_model, also 20): fetch it before any ready training
    priority: 20
    shell:
        "repro --log {log} fetch-dataset --plugin {params.plugin} --name {params.name} "
        "--params {params.spec:q} --out {output}"
