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
    # one thread: the embedded builders' SFT of a 0.4M-parameter model gains little from a second
    # one (ALFWorld: 138 s on two threads, 210 s on one), so two warm starts side by side finish
    # sooner than one after the other; paper scale only downloads
    threads: 1
    # warm starts gate every training of their benchmark: start them before anything else that is ready
    priority: 20
    shell:
        "repro --log {log} get-model --builder {params.builder} --params {params.spec:q} "
        "{params.dataset} --out {output}"
