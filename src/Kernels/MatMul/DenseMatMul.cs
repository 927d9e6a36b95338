using System.Buffers;
using System.Numerics.Tensors;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;


namespace EdgeSlm.Kernels.MatMul;

/// <summary>
/// y[t, r] = Σ_k W[r, k] · x[t, k] for f32 and f16 weights (views into a mapped file), as ggml multiplies them:
/// f32 in float; f16 with the activations rounded to f16 too (ggml's <c>vec_dot_type</c> of f16 is f16), both
/// widened to float and summed in float. Rows are split over the worker pool of a <see cref="QuantMatMul"/>, so a
/// model's products share one set of threads. Not thread-safe; after the first call with the largest shape, calls
/// allocate nothing.
/// </summary>
public sealed unsafe class DenseMatMul
{
    private const int RowsPerChunk = 16;
    private const int StackColumns = 8192;

    private readonly QuantMatMul _threads;
    private readonly FloatPath _path;
    private readonly Action<int> _runChunk;
    private float[] _rounded = [];

    private QuantType _type;
    private byte* _weights;
    private int _rows;
    private int _columns;
    private float* _x;
    private int _tokens;
    private float* _y;

    /// <param name="threads">The products whose pool and <see cref="QuantMatMul.ActiveThreads"/> these use.</param>
    public DenseMatMul(QuantMatMul threads)
    {
        ArgumentNullException.ThrowIfNull(threads);
        _threads = threads;
        _path = FloatPaths.For(threads.Path);
        _runChunk = RunChunk;
    }

    /// <param name="type">f32 or f16.</param>
    /// <param name="weights">W, rows × columns of <paramref name="type"/>, row after row.</param>
    /// <param name="x">(tokens, columns) row-major.</param>
    /// <param name="y">(tokens, rows) row-major.</param>
    public void Multiply(QuantType type, byte* weights, int rows, int columns, ReadOnlySpan<float> x, int tokens, Span<float> y)
    {
        Validate(type, weights, rows, columns, x, tokens, y);
        ReadOnlySpan<float> input = x;
        if (type == QuantType.F16)
        {
            if (_rounded.Length < x.Length)
            {
                _rounded = GC.AllocateUninitializedArray<float>(x.Length, pinned: true);
            }
            RoundToHalf(x, _rounded.AsSpan(0, x.Length));
            input = _rounded.AsSpan(0, x.Length);
        }
        fixed (float* xp = input)
        fixed (float* yp = y)
        {
            _type = type;
            _weights = weights;
            _rows = rows;
            _columns = columns;
            _x = xp;
            _tokens = tokens;
            _y = yp;
            int chunks = (rows + RowsPerChunk - 1) / RowsPerChunk;
            int threads = _threads.ThreadsNow;
            if (threads == 1 || chunks == 1)
            {
                Rows(type, weights, columns, xp, tokens, yp, rows, 0, rows);
            }
            else
            {
                _threads.Pool.Run(_runChunk, chunks, threads);
            }
            _weights = null;
            _x = null;
            _y = null;
        }
    }

    /// <summary>Rounds activations to f16 and back, as ggml converts them for an f16 product.</summary>
    public static void RoundToHalf(ReadOnlySpan<float> x, Span<float> destination)
    {
        Span<Half> halves = stackalloc Half[256];
        for (int start = 0; start < x.Length; start += halves.Length)
        {
            int count = Math.Min(halves.Length, x.Length - start);
            TensorPrimitives.ConvertToHalf(x.Slice(start, count), halves[..count]);
            TensorPrimitives.ConvertToSingle(halves[..count], destination.Slice(start, count));
        }
    }

    private void RunChunk(int chunk)
    {
        int first = chunk * RowsPerChunk;
        int end = Math.Min(_rows, first + RowsPerChunk);
        Rows(_type, _weights, _columns, _x, _tokens, _y, _rows, first, end);
    }

    private void Rows(QuantType type, byte* weights, int columns, float* x, int tokens, float* y, int outputStride, int first, int end)
    {
        if (_path is FloatPath.Reference)
        {
            RowsReference(type, weights, columns, x, tokens, y, outputStride, first, end);
        }
        else
        {
            RowsVector(type, weights, columns, x, tokens, y, outputStride, first, end);
        }
    }

    /// <summary>Rows [first, end) of y, one plain float loop per dot product (activations already rounded for f16).</summary>
    public static void RowsReference(QuantType type, byte* weights, int columns, float* x, int tokens, float* y, int outputStride, int first, int end)
    {
        for (int r = first; r < end; r++)
        {
            for (int t = 0; t < tokens; t++)
            {
                float* xt = x + (long)t * columns;
                float sum = 0;
                if (type == QuantType.F32)
                {
                    float* w = (float*)weights + (long)r * columns;
                    for (int k = 0; k < columns; k++)
                    {
                        sum += w[k] * xt[k];
                    }
                }
                else
                {
                    Half* w = (Half*)weights + (long)r * columns;
                    for (int k = 0; k < columns; k++)
                    {
                        sum += (float)w[k] * xt[k];
                    }
                }
                y[(long)t * outputStride + r] = sum;
            }
        }
    }

    /// <summary>Rows [first, end) of y with TensorPrimitives dot products; an f16 row is widened once for all tokens.</summary>
    public static void RowsVector(QuantType type, byte* weights, int columns, float* x, int tokens, float* y, int outputStride, int first, int end)
    {
        float[]? rented = null;
        Span<float> row = type == QuantType.F32 ? default
            : columns <= StackColumns ? stackalloc float[columns]
            : (rented = ArrayPool<float>.Shared.Rent(columns)).AsSpan(0, columns);
        scoped ReadOnlySpan<float> w;
        for (int r = first; r < end; r++)
        {
            if (type == QuantType.F32)
            {
                w = new ReadOnlySpan<float>((float*)weights + (long)r * columns, columns);
            }
            else
            {
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)weights + (long)r * columns, columns), row);
                w = row;
            }
            for (int t = 0; t < tokens; t++)
            {
                y[(long)t * outputStride + r] = TensorPrimitives.Dot(w, new ReadOnlySpan<float>(x + (long)t * columns, columns));
            }
        }
        if (rented is not null)
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    private static void Validate(QuantType type, byte* weights, int rows, int columns, ReadOnlySpan<float> x, int tokens, Span<float> y)
    {
        if (type is not (QuantType.F32 or QuantType.F16))
        {
            throw new NotSupportedException($"DenseMatMul multiplies f32 and f16 weights, not {QuantTypeTraits.Of(type).Name}.");
        }
        if (weights == null || rows < 1 || columns < 1 || tokens < 1)
        {
            throw new ArgumentException($"A product needs weights, rows, columns and tokens (rows {rows}, columns {columns}, tokens {tokens}).");
        }
        if (x.Length != (long)tokens * columns || y.Length != (long)tokens * rows)
        {
            throw new ArgumentException($"{tokens} tokens need {(long)tokens * columns} inputs and {(long)tokens * rows} outputs (got {x.Length}, {y.Length}).");
        }
    }
}
