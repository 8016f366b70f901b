"""CryoGEN training: a generator ``g`` learns to dewedge and denoise one tomogram.

Notation: ``y`` is a normalised subtomogram of the observed tomogram,
``T`` the missing-wedge operator (:func:`~.wedge.apply_wedge`), ``R`` one of
the 20 cube rotations that move the wedge (a fresh one per sample and step),
``g'`` a frozen copy of ``g`` refreshed at the start of every epoch, and
``e_g``, ``e_h``, ``e`` white Gaussian noise whose standard deviation is
``u * noise_scale`` with ``u`` drawn uniformly in (0, 1] at every step.

Each step

1. updates the energy network ``E`` so that real observations get low energy
   and re-corrupted predictions high energy::

       real = T y + e
       fake = T (R g(y + e_g) + n_syn) + e

   with the ``"gan"`` objective ``softplus(E(real)) + softplus(-E(fake))``
   (the logistic loss with ``-E`` as logit) or the ``"wgan-gp"`` objective
   ``E(real) - E(fake) + gp_weight * (|grad E(mix)| - 1)^2 + 1e-3 E(real)^2``
   (Wasserstein with gradient penalty on random mixtures of the two, and a
   small drift term that keeps energies near zero);
2. updates ``g`` on ``energy_weight * L_E + fidelity_weight * L_fid + lambda * L_cons``:

   * ``L_E``: the energy of its re-corrupted predictions, ``softplus(E(fake))``
     (``"gan"``, non-saturating) or ``E(fake)`` (``"wgan-gp"``, reported
     relative to the mean energy of the real side, i.e. as the Wasserstein
     gap estimate);
   * ``L_fid = mean |T (g(y + e_g) - y)|^2 / (2 sigma_n^2)``: the paper's
     ``|T g - y|^2`` less its part outside the measured region, which ``g``
     cannot change (``T`` is an orthogonal projection), so that the value
     reads 0 for a prediction that agrees with the data;
   * ``L_cons = mean |R^-1 g(T R (g'(y) + e_h)) - g'(y)|^2`` (IsoNet-like);
     ``lambda`` is constant in the first epoch, then decays linearly to
     ``lambda_final * lambda_consistency`` at the last step.

Three options change what ``g`` sees and is scored against (the first and
the last are on by default, the filter off; ``benchmarks/versus.py``
measured each, docs/benchmarks records what each gave):

* ``fidelity_target="recorrupted"`` (single tomograms): ``g`` sees ``y + z``
  and ``L_fid`` scores it against ``y - z``, ``z`` a draw of the observation's
  noise statistics (``n_syn``'s). The two noises are independent (Gaussian
  noise, Recorrupted-to-Recorrupted), so copying the input's noise no longer
  lowers the loss. With even/odd halves the other half is the target instead;
* ``filter_input``: ``g`` sees ``T`` of its input. Inside the missing wedge a
  tomogram holds nothing but noise, which ``g`` would otherwise carry into its
  output (inference filters each tile with the volume's wedge). Off by
  default: nothing then constrains what ``g`` puts inside the wedge but the
  consistency term's self-made target, and on noise-free shapes and a real
  tomogram it bred z-periodic stripes there;
* ``consistency_target="data"`` (IsoNet's recipe): ``L_cons`` rotates and
  scores ``T y + (1 - T) g'(y)`` (the data where measured, the frozen
  prediction inside the wedge) instead of ``g'(y)``, so that the wedge filling
  is scored against measured data wherever a rotation brings them into the wedge.

Why ``n_syn``: real observations carry the acquisition noise ``n`` while
``T R g(.)`` is (ideally) clean, so a discriminator would simply learn to detect
noise, and push ``g`` to *produce* noise. The comparison is made fair by
re-noising the predictions with synthetic noise of the observation's
statistics (the measurement model is ``y = T x + n``, so a good ``g`` makes
``T (R g + n_syn)`` indistinguishable from ``T y``, as in AmbientGAN/CryoGAN).
Both sides are seen through ``T``: a subtomogram cut from the tomogram leaks
power into its wedge at its edges, which re-corrupted predictions never do,
and an energy network shown the raw crop learns that difference alone.
The noise is estimated from the tomogram before training (:func:`estimate_noise`)
with a two-part model: a *white* part, seen alone inside the missing wedge
(where neither signal nor wedge-filtered noise reach), and a *wedge-filtered*
part, confined to the measured region like the signal: the excess of the
power in the measured region over the white level at high spatial frequency
(0.35-0.5 cycles/voxel, where the signal is assumed weak). Noise added after
reconstruction (e.g. simulated ``T x + n``) shows up as white, noise
reconstructed from the tilt series as wedge-filtered. The estimate is an
upper bound where the signal is strong at high frequency, and misses
colouring of the noise spectrum (e.g. from SIRT-like filters); the extra
instance noise ``e``, identical on both sides, softens the remaining mismatch.
``noise_model`` overrides the estimate (``"white"``, ``"wedge"``, ``"none"``).
The estimated total standard deviation ``sigma`` is also the default
``sigma_n`` of the fidelity term, floored at 0.5: real tomograms measure
0.8 or more, and below the floor (clean or simulated data) the fidelity weight
``1/(2 sigma_n^2)`` would outweigh the consistency term by orders of magnitude,
and the wedge would never be filled (on the noiseless sphere phantom, a floor
of 0.05 left the PSNR unchanged where 0.5 raised it by 2.3 dB). ``sqrt(3) * sigma`` (within [0.1, 2])
the default ``noise_scale``, so that the drawn noise has on average the
variance of the observation noise; both are in units of the tomogram's
standard deviation.

Data: subtomograms are drawn at random positions whose centre lies in the
non-empty part of the tomogram (:func:`~.sampling.foreground_mask`), from a pool
of ``n_subtomos`` positions per epoch, each randomly cropped from a cube a
quarter larger, and normalised with the mean and standard deviation of the
whole tomogram (kept in the model). Tomograms thinner than the subtomogram size
(common: slabs of 30-60 voxels) get the subtomogram size reduced to the largest
multiple of the U-Net's padding multiple that fits; when even the smallest
size the U-Net accepts does not fit, the tomogram is padded by reflection to
that size. The event stream reports either change.

Start: the generator's weights come from the package's built-in prior
(:mod:`.prior`) when its U-Net has one (the quick preset's 8-wide U-Net: the
same U-Net trained once, with the truth as target, on simulated tomograms of public
single-particle maps), and are random otherwise or with ``prior=False``;
either way the run trains them on this tomogram alone.

Optimisation: Adam for both networks (``lr``, default 1e-4), linear warm-up
over the first ``warmup_fraction`` of the steps and linear decay after it;
mixed precision (bfloat16, or float16 with loss scaling) on CUDA, bfloat16 on
CPUs with native support (:func:`~napari_dewedge.core.device.amp_dtype`). Runs with the
same seed on the CPU are reproducible: identical losses and weights.

:class:`Trainer` runs the loop as a generator of :class:`TrainingEvent`; it stops
cleanly between steps on :meth:`Trainer.request_stop` or when the consumer
stops iterating, writes resumable checkpoints (weights, optimiser states, step
and random state; atomically; safe to load with ``weights_only=True``) every
``checkpoint_every_s`` seconds and at the end, and releases GPU memory when the
run ends, however it ends.

Modules: :mod:`.config` (settings, schema, presets), :mod:`.noise` (noise
estimate), :mod:`.sampling` (subtomograms), :mod:`.losses` (the losses and
schedules as pure functions), :mod:`.events` (the progress record),
:mod:`.checkpoint`, :mod:`.trainer`, :mod:`.energy` (the energy term of a step), :mod:`.prior`
(the built-in starting weights), :mod:`.multi` (datasets) and :mod:`.distributed` (torchrun).
"""

from __future__ import annotations

from ..._lazy import lazy_names

# Names are loaded on first use: the settings schema (config) imports neither
# numpy nor torch, so the command line's --help stays instant.
_WHERE = {
    "CHECKPOINT_FORMAT": "checkpoint",
    "ENERGY_OBJECTIVES": "config",
    "NOISE_MODELS": "config",
    "PRESETS": "config",
    "Setting": "config",
    "TrainingConfig": "config",
    "add_arguments": "config",
    "config_overrides": "config",
    "machine_settings": "config",
    "QUICK_FLOAT32_CPU_WIDTH": "config",
    "quick": "config",
    "settings_schema": "config",
    "standard": "config",
    "thorough": "config",
    "NoiseEstimate": "noise",
    "estimate_noise": "noise",
    "plan_subtomo_size": "sampling",
    "Trainer": "trainer",
    "TrainingEvent": "events",
    "fit": "trainer",
}


__all__ = [
    "ENERGY_OBJECTIVES",
    "NOISE_MODELS",
    "PRESETS",
    "CHECKPOINT_FORMAT",
    "NoiseEstimate",
    "TrainingConfig",
    "TrainingEvent",
    "Trainer",
    "estimate_noise",
    "plan_subtomo_size",
    "fit",
    "Setting",
    "settings_schema",
    "add_arguments",
    "config_overrides",
    "machine_settings",
    "QUICK_FLOAT32_CPU_WIDTH",
    "quick",
    "standard",
    "thorough",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__)
