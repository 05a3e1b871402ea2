rule get_model:
    input:
        unpack(get_model_inputs),
    output:
        directory("resources/models/{model}"),
    params:
        builder=get_model_builder,
        spec=get_model_params,
        dataset=get_model_dataset_arg,
    conda:
        "../../envs/repro.yaml"
    log:
        "logs/get_model/{model}.log",
    benchmark:
        "benchmarks/get_model/{model}.tsv"
    threads: 4  # the embedded builder's SFT; capped at --cores locally, nothing else runs beside it
    shell:
        "repro --log {log} get-model --builder {params.builder} --params {params.spec:q} "
        "{params.dataset} --out {output}"
