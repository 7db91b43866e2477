"""The training tasks (LightningModules), installed as ``rastlit.tasks``: ``mesh_fit.MeshFitTask``,
``texture_recovery.TextureRecoveryTask``, and the renderers they share (``render``). Imported by
``python -m rastlit.train`` through the ``task._target_`` of the configs."""
