using System.Numerics.Tensors;
using EdgeSlm.Kernels.Threading;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// The f32 baseline: y[t, r] = TensorPrimitives.Dot(W[r, :], x[t, :]) for every row and token, rows cut into
/// chunks for the same worker pool our kernels use. Rows outside, tokens inside, so each weight row is read from
/// memory once.
/// </summary>
internal sealed class FloatMatMul : IDisposable
{
    private readonly float[] _weights;
    private readonly int _rows;
    private readonly int _k;
    private readonly WorkerPool _pool;
    private readonly Action<int> _runChunk;
    private int _chunks;
    private float[] _activations = [];
    private float[] _output = [];
    private int _tokens;

    public FloatMatMul(float[] weights, int rows, int k, int threads)
    {
        _weights = weights;
        _rows = rows;
        _k = k;
        _pool = new WorkerPool(threads);
        _runChunk = RunChunk;
    }

    /// <summary>y (tokens × rows) = x (tokens × k) · Wᵀ.</summary>
    public void Multiply(float[] activations, int tokens, float[] output)
    {
        _activations = activations;
        _tokens = tokens;
        _output = output;
        _chunks = Math.Min(_rows, _pool.Threads * 4);
        _pool.Run(_runChunk, _chunks, _pool.Threads);
    }

    private void RunChunk(int chunk)
    {
        int first = (int)((long)_rows * chunk / _chunks);
        int end = (int)((long)_rows * (chunk + 1) / _chunks);
        for (int r = first; r < end; r++)
        {
            ReadOnlySpan<float> row = _weights.AsSpan(r * _k, _k);
            for (int t = 0; t < _tokens; t++)
            {
                _output[t * _rows + r] = TensorPrimitives.Dot(row, _activations.AsSpan(t * _k, _k));
            }
        }
    }

    public void Dispose() => _pool.Dispose();
}
