"""One module per experiment (or per closely related group); each registers itself on import.

A module is named after the claim IDs it holds, then a topic word, so a claim's experiment is
found by its ID: ``i5_i8_variance``, ``s3_clipping``, ``r7_to_r9_r14_dropout`` (a run of three
or more consecutive IDs as ``first_to_last``), ``c1_to_c5_recipes``; a published result is
named after its ID, ``p_he2015``. ``@experiment("S3")`` takes the IDs only: the claim's title,
text and source are in :mod:`stabletrain.lab.claims`.

Modules here are discovered by :func:`stabletrain.lab.registry.load_all`: adding a file is
enough, no list to edit.
"""
