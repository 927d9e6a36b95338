using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Kernels.Threading;

namespace EdgeSlm.Kernels.MatMul;

/// <summary>
/// y[t, r] = Σ_k W[r, k] · x[t, k] for a quantized W and f32 activations of 1 to any number of tokens: the
/// activations are quantized to Q8_0 once, then the rows are cut into chunks of whole row tiles that the
/// threads of a small reusable pool claim one at a time, each running the selected kernel path on its chunk.
/// One instance per inference thread (not thread-safe); after the first call with the largest shape, calls
/// allocate nothing.
/// </summary>
public sealed unsafe class QuantMatMul : IDisposable
{
    // Chunks per thread: enough that a thread the scheduler runs late leaves little for the others to wait on,
    // few enough that claiming a chunk (one compare-and-swap) is nothing beside running it.
    private const int ChunksPerThread = 4;

    private readonly WorkerPool _pool;
    private readonly Action<int> _runChunk;
    private readonly delegate*<in MatMulArgs, int, int, void> _q4_0;
    private readonly delegate*<in MatMulArgs, int, int, void> _q8_0;
    private readonly ActivationQuantizer.Tier _quantize;

    private MatMulArgs _args;
    private delegate*<in MatMulArgs, int, int, void> _kernel;
    private readonly int _tileRows;
    private int _rowTiles;
    private int _chunks;
    private readonly QuantizedActivations _ownActivations = new();

    /// <param name="threads">Threads to split rows over (1 to 64; the caller's thread is one of them).</param>
    /// <param name="path">A kernel path; by default <see cref="KernelPaths.Default"/>.</param>
    public QuantMatMul(int threads = 1, KernelPath? path = null)
    {
        Path = path ?? KernelPaths.Default;
        if (!KernelPaths.IsSupported(Path))
        {
            throw new NotSupportedException($"This CPU cannot run the {KernelPaths.Name(Path)} kernel path (it supports: {string.Join(", ", KernelPaths.Supported.Select(KernelPaths.Name))}).");
        }
        _q4_0 = QuantMatMulKernels.Q4_0(Path);
        _q8_0 = QuantMatMulKernels.Q8_0(Path);
        _quantize = QuantMatMulKernels.Quantizer(Path);
        _tileRows = QuantMatMulKernels.TileRows(Path);
        _pool = new WorkerPool(threads);
        _runChunk = RunChunk;
    }

    public KernelPath Path { get; }
    public int Threads => _pool.Threads;

    /// <summary>The pool the products run on, for other products of the same model (<see cref="DenseMatMul"/>).</summary>
    internal WorkerPool Pool => _pool;

    private volatile int _activeThreads;

    /// <summary>
    /// Threads the next products use, 1 to <see cref="Threads"/> (the thermal governor lowers it on a hot CPU).
    /// May be set from any thread; a product in progress keeps the split it started with.
    /// </summary>
    public int ActiveThreads
    {
        get => _activeThreads == 0 ? _pool.Threads : _activeThreads;
        set => _activeThreads = Math.Clamp(value, 1, _pool.Threads);
    }

    private int _passThreads;

    /// <summary>
    /// A further cap the owner sets before a forward pass, for an input too small for a split to pay (1), or
    /// <see cref="Threads"/> for none (the default). Unlike <see cref="ActiveThreads"/> only the owning thread sets it.
    /// </summary>
    public int PassThreads
    {
        get => _passThreads == 0 ? _pool.Threads : _passThreads;
        set => _passThreads = Math.Clamp(value, 1, _pool.Threads);
    }

    /// <summary>Threads the next product splits over: the smaller of <see cref="ActiveThreads"/> and <see cref="PassThreads"/>.</summary>
    internal int ThreadsNow => Math.Min(ActiveThreads, PassThreads);

    /// <summary>y[t, r] = Σ_k W[r, k] · x[t, k]: quantizes x, then multiplies.</summary>
    /// <param name="weights">W, rows × k.</param>
    /// <param name="activations">x, tokens × k, row-major.</param>
    /// <param name="tokens">Number of activation rows (1 for a matrix-vector product).</param>
    /// <param name="output">y, tokens × rows, row-major.</param>
    public void Multiply(QuantizedMatrix weights, ReadOnlySpan<float> activations, int tokens, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Quantize(activations, tokens, weights.Columns, _ownActivations);
        Multiply(weights, _ownActivations, output);
    }

    /// <summary>Quantizes x (tokens × columns, row-major, columns a multiple of 32) to Q8_0 for <see cref="Multiply(QuantizedMatrix, QuantizedActivations, Span{float})"/>.</summary>
    public void Quantize(ReadOnlySpan<float> activations, int tokens, int columns, QuantizedActivations destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (tokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "At least one token is needed.");
        }
        if (columns < 1 || columns % BlockQ8_0.Elements != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(columns), columns, $"Rows of activations need a positive multiple of {BlockQ8_0.Elements} values.");
        }
        if (activations.Length != (long)tokens * columns)
        {
            throw new ArgumentException($"{tokens} tokens of {columns} values need {(long)tokens * columns} activations, not {activations.Length}.", nameof(activations));
        }
        destination.Resize(tokens, columns);
        fixed (float* x = activations)
        {
            _quantize(x, tokens * (columns / BlockQ8_0.Elements), destination.Data);
        }
    }

    /// <summary>y[t, r] = Σ_k W[r, k] · x[t, k] for activations quantized by <see cref="Quantize"/>.</summary>
    public void Multiply(QuantizedMatrix weights, QuantizedActivations activations, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(activations);
        if (activations.Columns != weights.Columns)
        {
            throw new ArgumentException($"The activations have {activations.Columns} columns; W has {weights.Columns}.", nameof(activations));
        }
        int tokens = activations.Tokens;
        if (output.Length != (long)tokens * weights.Rows)
        {
            throw new ArgumentException($"{tokens} tokens times {weights.Rows} rows need {(long)tokens * weights.Rows} outputs, not {output.Length}.", nameof(output));
        }

        fixed (float* y = output)
        {
            _args = new MatMulArgs
            {
                Weights = weights.Data,
                WeightRowBytes = (nint)weights.RowBytes,
                Rows = weights.Rows,
                Blocks = weights.Columns / BlockQ8_0.Elements,
                Activations = activations.Data,
                Tokens = tokens,
                Output = y,
                OutputStride = weights.Rows,
            };
            _rowTiles = (weights.Rows + _tileRows - 1) / _tileRows;
            _kernel = weights.Type == QuantType.Q4_0 ? _q4_0 : _q8_0;
            int threads = ThreadsNow;
            _chunks = Math.Min(_rowTiles, threads * ChunksPerThread);
            if (threads == 1 || _chunks == 1)
            {
                _kernel(in _args, 0, weights.Rows);
            }
            else
            {
                _pool.Run(_runChunk, _chunks, threads);
            }
            _args = default;
        }
    }

    private void RunChunk(int chunk)
    {
        (int first, int end) = ChunkRows(chunk, _chunks, _rowTiles, _tileRows, _args.Rows);
        _kernel(in _args, first, end);
    }

    /// <summary>
    /// Rows [first, end) of chunk <paramref name="chunk"/> of <paramref name="chunks"/> (at most
    /// <paramref name="rowTiles"/>): whole tiles, at least one, starting on a tile boundary; the last chunk also
    /// takes the ragged end of the matrix. Each row is so computed by one kernel call over the same tile as with
    /// one thread, and the result does not depend on the thread count.
    /// </summary>
    internal static (int First, int End) ChunkRows(int chunk, int chunks, int rowTiles, int tileRows, int rows)
    {
        Debug.Assert(chunks >= 1 && chunks <= rowTiles && (uint)chunk < (uint)chunks);
        int first = (int)((long)rowTiles * chunk / chunks) * tileRows;
        int end = Math.Min(rows, (int)((long)rowTiles * (chunk + 1) / chunks) * tileRows);
        return (first, end);
    }

    public void Dispose() => _pool.Dispose();
}

/// <summary>The one place that maps a kernel path to its kernels.</summary>
internal static unsafe class QuantMatMulKernels
{
    public static delegate*<in MatMulArgs, int, int, void> Q4_0(KernelPath path) => path switch
    {
        KernelPath.Reference => &ReferenceTiles<Q4_0Weights>.RunRows,
        KernelPath.Portable => &TileWalk.RunRows<Vector128Tiles<Q4_0Weights, Vector128Dot>>,
        KernelPath.Neon => &TileWalk.RunRows<Vector128Tiles<Q4_0Weights, AdvSimdDot>>,
        KernelPath.NeonDotProd => &TileWalk.RunRows<Vector128Tiles<Q4_0Weights, AdvSimdDotProdDot>>,
        KernelPath.Avx2 => &Vector256RowTiles8<Q4_0Weights, Avx2Dot>.RunRows,
        KernelPath.AvxVnni => &Vector256RowTiles8<Q4_0Weights, AvxVnniDot>.RunRows,
        KernelPath.Avx512 => &Vector512RowTiles16<Q4_0Weights>.RunRows,
        _ => throw new NotSupportedException($"Unknown kernel path {path}."),
    };

    public static delegate*<in MatMulArgs, int, int, void> Q8_0(KernelPath path) => path switch
    {
        KernelPath.Reference => &ReferenceTiles<Q8_0Weights>.RunRows,
        KernelPath.Portable => &TileWalk.RunRows<Vector128Tiles<Q8_0Weights, Vector128Dot>>,
        KernelPath.Neon => &TileWalk.RunRows<Vector128Tiles<Q8_0Weights, AdvSimdDot>>,
        KernelPath.NeonDotProd => &TileWalk.RunRows<Vector128Tiles<Q8_0Weights, AdvSimdDotProdDot>>,
        KernelPath.Avx2 => &Vector256RowTiles8<Q8_0Weights, Avx2Dot>.RunRows,
        KernelPath.AvxVnni => &Vector256RowTiles8<Q8_0Weights, AvxVnniDot>.RunRows,
        KernelPath.Avx512 => &Vector512RowTiles16<Q8_0Weights>.RunRows,
        _ => throw new NotSupportedException($"Unknown kernel path {path}."),
    };

    /// <summary>Rows per tile of the path's main kernel: threads get whole tiles.</summary>
    public static int TileRows(KernelPath path) => path switch
    {
        KernelPath.Avx512 => 16,
        KernelPath.Avx2 or KernelPath.AvxVnni => 8,
        _ => 4,
    };

    public static ActivationQuantizer.Tier Quantizer(KernelPath path) => path switch
    {
        KernelPath.Reference => ActivationQuantizer.QuantizeReference,
        KernelPath.Avx512 => ActivationQuantizer.QuantizeAvx512,
        KernelPath.Avx2 or KernelPath.AvxVnni => ActivationQuantizer.QuantizeVector256,
        _ => ActivationQuantizer.QuantizeVector128,
    };
}
