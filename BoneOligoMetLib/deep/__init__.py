"""BasicNet deep features: the network, lesion patches, training on a cohort, networks on disk
(safetensors + JSON), inference. Above ``lesions``; ``train_cohort`` sits with the models (it
uses their patient split)."""
