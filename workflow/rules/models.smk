rule get_model:
    input:
        unpack(get_model_inputs),
    output:
        directory("resources/models/{model}"),
    params:
        builder=get_model_builder,
        spec=get_model_params,
        dataset=get_model_dataset_arg,
        plugin=get_model_plugin,
    conda:
        "../../envs/repro.yaml"
    log:
        "logs/get_model/{model}.log",
    benchmark:
        "benchmarks/get_model/{model}.tsv"
    # the model entry's `resources` (repro.config.MODEL_RESOURCES by default: one thread, as the
    # embedded warm starts' SFT of a 0.4M-parameter model gains little from a second one, so two
    # side by side finish sooner than one after the other)
    threads: get_model_resource("cpus")
    resources:
        gpu=get_model_resource("gpus"),
        mem_mb=get_model_resource("mem_mb"),
        runtime=get_model_resource("runtime_min"),
    # warm starts gate every training of their benchmark: start them before anything else that is ready
    priority: 20
    shell:
        "repro --log {log} get-model --plugin {params.plugin} --builder {params.builder} --params {params.spec:q} "
        "{params.dataset} --out {output}"
