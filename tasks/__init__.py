"""The training tasks (LightningModules), installed as ``rastlit.tasks``: ``mesh_fit.MeshFitTask``,
``texture_recovery.TextureRecoveryTask``, their base (``base``) and callbacks (``callbacks``). Imported by
``python -m rastlit.train`` through the ``task._target_`` of the configs."""
