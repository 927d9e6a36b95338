using System.Diagnostics;
using System.Runtime.CompilerServices;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Float;

namespace EdgeSlm.Models.Bert;

/// <summary>What looks into a forward pass without being part of its math: calibration and per-stage timing.</summary>
public sealed partial class BertEncoder
{
    /// <summary>Calibration: sees every linear layer's input (tokens × columns) as it is multiplied.</summary>
    internal delegate void LinearInputObserver(LinearWeights weights, ReadOnlySpan<float> input, int tokens);

    private LinearInputObserver? _observer;

    internal void Observe(LinearInputObserver? observer) => _observer = observer;

    /// <summary>The steps of a forward pass, as <see cref="ProfileStages"/> times them.</summary>
    internal enum Stage
    {
        Embeddings, Quantize, QueryKeyValue, AttentionOutput, FeedForwardUp, FeedForwardDown, BiasAndOutliers,
        Attention, LayerNorm, Gelu, Pooling,
    }

    private long[]? _stageTicks;
    private long _stageStart;

    /// <summary>Benchmarks: adds the Stopwatch ticks of each <see cref="Stage"/> of every Encode to <paramref name="ticks"/> (null: off).</summary>
    internal void ProfileStages(long[]? ticks) => _stageTicks = ticks;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void StartStages()
    {
        if (_stageTicks is not null)
        {
            _stageStart = Stopwatch.GetTimestamp();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EndStage(Stage stage)
    {
        if (_stageTicks is not null)
        {
            long now = Stopwatch.GetTimestamp();
            _stageTicks[(int)stage] += now - _stageStart;
            _stageStart = now;
        }
    }
}
