namespace EdgeSlm.Benchmarks.Ggml;

/// <summary>
/// One ggml graph holding a single <c>ggml_mul_mat</c>: out[tokens, rows] = W[rows, k] · x[tokens, k] with Q4_0
/// weights and f32 activations, computed by the CPU backend (which quantizes the activations to Q8_0 itself,
/// as our kernels do). Either the weights sit as they are in a plain context (no_alloc = false), or they are
/// loaded into the CPU_REPACK buffer type, which interleaves them for ggml's GEMM/GEMV kernels as llama.cpp
/// does for model weights by default.
/// </summary>
internal sealed unsafe class GgmlMatMul : IDisposable
{
    private readonly GgmlLibrary _ggml;
    private readonly nint _backend;
    private readonly nint _weightsContext;
    private readonly nint _context;
    private readonly nint _weightsBuffer;
    private readonly nint _activationBuffer;
    private readonly nint _graph;
    private readonly nint _activations;
    private readonly nint _output;
    private readonly int _activationCount;
    private readonly int _outputCount;

    /// <param name="weights">Q4_0 blocks, row after row (GGUF layout).</param>
    /// <param name="repackBufferType">CPU_REPACK from <see cref="GgmlLibrary.RepackBufferType"/>, or 0 for a plain context.</param>
    public GgmlMatMul(GgmlLibrary ggml, ReadOnlySpan<byte> weights, int rows, int k, int tokens, nint backend, nint repackBufferType)
    {
        _ggml = ggml;
        _backend = backend;
        _activationCount = tokens * k;
        _outputCount = tokens * rows;
        nuint metadata = 8 * ggml.TensorOverhead() + ggml.GraphOverhead();

        if (repackBufferType == 0)
        {
            // Everything, data included, in one context's memory.
            nuint data = (nuint)weights.Length + (nuint)(_activationCount + _outputCount) * sizeof(float) + 4096;
            _context = Check(ggml.Init(new GgmlInitParams { MemSize = metadata + data, NoAlloc = 0 }), "ggml_init");
            nint w = Check(ggml.NewTensor2D(_context, GgmlLibrary.TypeQ4_0, k, rows), "ggml_new_tensor_2d (weights)");
            CheckSize(w, weights.Length);
            weights.CopyTo(new Span<byte>(ggml.GetData(w), weights.Length));
            _activations = Check(ggml.NewTensor2D(_context, GgmlLibrary.TypeF32, k, tokens), "ggml_new_tensor_2d (activations)");
            _output = Check(ggml.MulMat(_context, w, _activations), "ggml_mul_mat");
        }
        else
        {
            // Weights in a CPU_REPACK buffer (repacked by ggml_backend_tensor_set), the rest in the CPU buffer type.
            _weightsContext = Check(ggml.Init(new GgmlInitParams { MemSize = metadata, NoAlloc = 1 }), "ggml_init (weights)");
            nint w = Check(ggml.NewTensor2D(_weightsContext, GgmlLibrary.TypeQ4_0, k, rows), "ggml_new_tensor_2d (weights)");
            CheckSize(w, weights.Length);
            _weightsBuffer = Check(ggml.BackendAllocContextTensorsFromBufferType(_weightsContext, repackBufferType), "ggml_backend_alloc_ctx_tensors_from_buft (CPU_REPACK)");
            fixed (byte* source = weights)
            {
                ggml.BackendTensorSet(w, source, 0, (nuint)weights.Length);
            }
            _context = Check(ggml.Init(new GgmlInitParams { MemSize = metadata, NoAlloc = 1 }), "ggml_init");
            _activations = Check(ggml.NewTensor2D(_context, GgmlLibrary.TypeF32, k, tokens), "ggml_new_tensor_2d (activations)");
            _output = Check(ggml.MulMat(_context, w, _activations), "ggml_mul_mat");
            _activationBuffer = Check(ggml.BackendAllocContextTensorsFromBufferType(_context, ggml.BackendGetDefaultBufferType(backend)), "ggml_backend_alloc_ctx_tensors_from_buft (CPU)");
        }
        _graph = Check(ggml.NewGraph(_context), "ggml_new_graph");
        ggml.BuildForwardExpand(_graph, _output);
        CheckSize(_output, _outputCount * sizeof(float));
    }

    /// <summary>x, tokens × k: write the activations here (host memory).</summary>
    public Span<float> Activations => new(_ggml.GetData(_activations), _activationCount);

    /// <summary>y, tokens × rows, after <see cref="Compute"/>.</summary>
    public ReadOnlySpan<float> Output => new(_ggml.GetData(_output), _outputCount);

    /// <summary>Runs the graph on the backend's threads (<c>ggml_backend_cpu_set_n_threads</c>).</summary>
    public void Compute()
    {
        int status = _ggml.BackendGraphCompute(_backend, _graph);
        if (status != GgmlLibrary.StatusSuccess)
        {
            throw new InvalidOperationException($"ggml_backend_graph_compute returned status {status}.");
        }
    }

    public void Dispose()
    {
        if (_activationBuffer != 0) _ggml.BackendBufferFree(_activationBuffer);
        if (_weightsBuffer != 0) _ggml.BackendBufferFree(_weightsBuffer);
        if (_context != 0) _ggml.Free(_context);
        if (_weightsContext != 0) _ggml.Free(_weightsContext);
    }

    private void CheckSize(nint tensor, long bytes)
    {
        if ((long)_ggml.NBytes(tensor) != bytes)
        {
            throw new InvalidOperationException($"A ggml tensor has {_ggml.NBytes(tensor)} bytes; {bytes} were expected.");
        }
    }

    private static nint Check(nint handle, string call) =>
        handle != 0 ? handle : throw new InvalidOperationException($"{call} returned NULL.");
}
