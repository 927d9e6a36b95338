using System.Diagnostics;
using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Inference;

/// <summary>What <see cref="IntentRuntime"/> loads and how it trains; the module's settings give it (<c>Model</c>, <c>Intents</c>, ...).</summary>
/// <param name="Model">GGUF model file; null or empty: the bundled MiniLM, converted once into the cache.</param>
/// <param name="Intents">Intents file or folder; null or empty: the built-in sample intents.</param>
/// <param name="CacheDirectory">Converted models and trained heads; null or empty: <see cref="ModelCache.Directory"/>.</param>
/// <param name="Threads">Threads of the encoder's worker pool (the most any pass uses).</param>
/// <param name="EncoderThreads">Threads of every inference pass; null: measured at start per input length (<see cref="EncoderThreadPlan.Measure"/>).</param>
/// <param name="Slm">The generative language model behind the classifier; null: none.</param>
public sealed record RuntimeSettings(string? Model, string? Intents, int Threads, int MaxTokens, string? CacheDirectory, IntentEngineSettings Engine, int? EncoderThreads = null, SlmSettings? Slm = null);

/// <summary>
/// The model and the current intent engine. Inference runs on one worker with its own encoder buffers; training
/// runs on another set of buffers over the same memory-mapped weights, so a retrain never pauses inference. The
/// new engine replaces the old one in one reference swap.
/// </summary>
public sealed class IntentRuntime : IDisposable
{
    private readonly BertModel[] _models;
    private IntentEngineSettings _engineSettings;
    private readonly string? _cacheDirectory;
    private readonly int _threads;
    private readonly int _maxTokens;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _training = new(1, 1);
    private readonly LanguageModelParts? _slm;
    private readonly object _inference = new();
    private Pipeline _pipeline;

    /// <summary>What answers for one intents version: swapped as one.</summary>
    private sealed record Pipeline(IntentEngine Engine, SlmRecognizer? Slm);

    /// <summary>The language model, loaded once for all intents versions (its weights stay mapped).</summary>
    private sealed record LanguageModelParts(LlamaModel Model, DecoderTokenizer Tokenizer, SlmSettings Settings);

    private IntentRuntime(BertModel[] models, SentenceFeatures features, Pipeline pipeline, IntentEngineSettings engineSettings, string? cacheDirectory, RuntimeSettings settings,
        string? modelWarning, LanguageModelParts? slm, SlmMode slmMode, string? slmError, ILogger logger)
    {
        _models = models;
        Features = features;
        _pipeline = pipeline;
        _slm = slm;
        SlmMode = slmMode;
        SlmError = slmError;
        SlmFile = string.IsNullOrWhiteSpace(settings.Slm?.Model) ? null : Path.GetFullPath(settings.Slm.Model);
        _engineSettings = engineSettings;
        _cacheDirectory = cacheDirectory;
        _threads = settings.Threads;
        _maxTokens = settings.MaxTokens;
        ModelWarning = modelWarning;
        ModelFile = string.IsNullOrWhiteSpace(settings.Model) || settings.Model.StartsWith(ModelCache.BundledPrefix, StringComparison.OrdinalIgnoreCase)
            ? null : Path.GetFullPath(settings.Model);
        _logger = logger;
    }

    /// <summary>The inference worker's encoder. Only the worker may call it.</summary>
    public SentenceFeatures Features { get; }

    public IntentEngine Engine => Volatile.Read(ref _pipeline).Engine;

    /// <summary>The language model's recognizer for the current intents, null without one.</summary>
    public SlmRecognizer? Slm => Volatile.Read(ref _pipeline).Slm;

    /// <summary>How the language model is used: <see cref="Inference.SlmMode.Off"/> also when its file could not be loaded.</summary>
    public SlmMode SlmMode { get; }

    /// <summary>The language model file the settings name (null: none).</summary>
    public string? SlmFile { get; }

    /// <summary>Why the language model is not in use although one was set; null when it is (or none was set).</summary>
    public string? SlmError { get; private set; }

    /// <summary>Utterances of which the classifier's answer stood because the batch's time budget for the model was spent.</summary>
    public long SlmTimeouts => Interlocked.Read(ref _slmTimeouts);

    private long _slmTimeouts;

    /// <summary>The training settings in use; later retrains keep them.</summary>
    public IntentEngineSettings EngineSettings => Volatile.Read(ref _engineSettings);

    public string ModelDescription => string.Join(" + ", _models.Select(m => $"{m.Name} ({Path.GetFileName(m.Path)})"));

    /// <summary>Why the model is not where it should be (a bundled model converted in memory because the cache could not be written); null when it is.</summary>
    public string? ModelWarning { get; }

    /// <summary>The model file the settings named (null for a bundled model): the module watches it.</summary>
    public string? ModelFile { get; }

    /// <summary>Loads the model (converting the bundled one on first use) and trains (or loads) the head.</summary>
    public static IntentRuntime Start(RuntimeSettings settings, ILogger logger)
    {
        var clock = Stopwatch.StartNew();
        string cache = string.IsNullOrWhiteSpace(settings.CacheDirectory) ? ModelCache.Directory : settings.CacheDirectory;
        // Read into private memory rather than mapped: the file may be replaced or overwritten while we run.
        BertModel model = ModelCache.LoadForModule(settings.Model, cache, out string? warning);
        var models = new[] { model };
        SentenceFeatures? features = null;
        LanguageModelParts? slm = null;
        try
        {
            if (warning is not null)
            {
                logger.LogWarning("Model cache not writable: {Warning}", warning);
            }
            logger.LogInformation("Model {Model} loaded in {Milliseconds} ms", model.Name, clock.ElapsedMilliseconds);
            if (settings.MaxTokens > model.Config.ContextLength)
            {
                throw new SettingsException($"MaxTokens: {settings.MaxTokens} is more than the model's context of {model.Config.ContextLength} tokens");
            }
            features = new SentenceFeatures(models, settings.Threads, settings.MaxTokens);
            IntentDefinitions definitions = LoadDefinitions(settings.Intents);
            SlmMode mode = settings.Slm?.ParsedMode() ?? SlmMode.Off;
            string? slmError = null;
            if (mode != SlmMode.Off)
            {
                slm = LoadLanguageModel(settings.Slm!, logger, out slmError);
                if (slm is null) mode = SlmMode.Off; // the classifier answers alone, trained even in only mode
            }
            IntentEngineSettings engineSettings = settings.Engine;
            IntentEngine engine = mode == SlmMode.Only ? IntentEngine.Untrained(definitions) : IntentEngine.Train(features, definitions, engineSettings, cache);
            Log(logger, engine);
            ChooseThreads(features, settings, logger);
            SlmRecognizer? recognizer = slm is null ? null : BuildRecognizer(slm, definitions, logger, ref slmError);
            return new IntentRuntime(models, features, new Pipeline(engine, recognizer), engineSettings, cache, settings, warning, slm, mode, slmError, logger);
        }
        catch
        {
            features?.Dispose();
            model.Dispose();
            slm?.Model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks the model file after it changed on disk: null when it is the model in use, otherwise what it is now
    /// (valid but different: used from the next start; or why it cannot be used). The model in use is a private copy
    /// and stays as it is either way.
    /// </summary>
    /// <exception cref="GgufFormatException">The file is not a usable model.</exception>
    /// <exception cref="IOException">The file cannot be read (for example, it is gone).</exception>
    public string? CheckModelFile()
    {
        if (ModelFile is null)
        {
            return null;
        }
        using BertModel candidate = BertModel.LoadIntoMemory(ModelFile);
        BertModel current = _models[0];
        if (candidate.FileBytes == current.FileBytes && candidate.GgufHeader.SequenceEqual(current.GgufHeader))
        {
            return null;
        }
        return $"{ModelFile} now holds a valid model ({candidate.Name}); the module keeps {current.Name} until it restarts";
    }

    /// <summary>Each model's inference threads per input length, e.g. <c>1 thread below 24 tokens, 2 from 24 (measured)</c>.</summary>
    public string ThreadsDescription => string.Join(" + ", Features.ThreadPlans.Select(p => p.ToString()));

    // A pass of one short utterance can be faster on one thread than split (docs/performance.md): unless a setting
    // fixes the count, the encoder is timed here, on this machine, and each inference pass takes the count that was
    // fastest for its length. Training (before this, and retraining on features of its own) keeps all threads: its
    // batches of 32 sentences are longer than any length timed here.
    private static void ChooseThreads(SentenceFeatures features, RuntimeSettings settings, ILogger logger)
    {
        if (settings.EncoderThreads is int threads)
        {
            features.FixThreads(threads);
            logger.LogInformation("Encoder threads: {Plan} (EncoderThreads setting)", string.Join(" + ", features.ThreadPlans));
            return;
        }
        var clock = Stopwatch.StartNew();
        IReadOnlyList<EncoderThreadPlan> plans = features.MeasureThreadPlans();
        foreach (EncoderThreadPlan plan in plans)
        {
            logger.LogInformation("Encoder threads: {Plan}, chosen in {Milliseconds} ms from median pass times {Timings}",
                plan, clock.ElapsedMilliseconds, plan.IsMeasured ? plan.DescribeTimings() : "(one thread: nothing to measure)");
        }
    }

    public static IntentDefinitions LoadDefinitions(string? path) =>
        string.IsNullOrWhiteSpace(path) ? SampleIntents.Load() : IntentDefinitions.Load(path);

    /// <summary>Trains on new definitions in the background and swaps the engine in; the old one stays on failure.</summary>
    public Task<IntentEngine> RetrainAsync(IntentDefinitions definitions, CancellationToken cancellation) =>
        RetrainAsync(definitions, null, cancellation);

    /// <summary>
    /// Trains with new settings too (a threshold set at run time); they stay for later retrains once this one
    /// succeeds. Retraining is how a setting changes because an engine is immutable once trained. Null: the
    /// settings in use when this training starts.
    /// </summary>
    public async Task<IntentEngine> RetrainAsync(IntentDefinitions definitions, IntentEngineSettings? newSettings, CancellationToken cancellation)
    {
        await _training.WaitAsync(cancellation);
        try
        {
            IntentEngineSettings settings = newSettings ?? EngineSettings;
            return await Task.Run(() =>
            {
                using var features = new SentenceFeatures(_models, _threads, _maxTokens);
                IntentEngine engine = SlmMode == SlmMode.Only ? IntentEngine.Untrained(definitions) : IntentEngine.Train(features, definitions, settings, _cacheDirectory);
                string? error = null;
                SlmRecognizer? recognizer = _slm is null ? null : BuildRecognizer(_slm, definitions, _logger, ref error);
                Pipeline old;
                lock (_inference)
                {
                    old = _pipeline;
                    Volatile.Write(ref _engineSettings, settings);
                    Volatile.Write(ref _pipeline, new Pipeline(engine, recognizer));
                    if (_slm is not null) SlmError = error;
                }
                old.Slm?.Dispose();
                Log(_logger, engine);
                return engine;
            }, cancellation);
        }
        finally
        {
            _training.Release();
        }
    }

    /// <summary>
    /// Classifies a batch as the module answers it: templates, then the classifier, then (in fallback and only
    /// modes) the language model for each utterance the classifier did not recognise, until the batch's time
    /// budget is spent. Only the inference worker calls it; a retrain waits for the batch before it swaps.
    /// </summary>
    public IntentResult[] Classify(IReadOnlyList<string> texts, IReadOnlyList<IReadOnlyCollection<string>?>? intentFilters = null)
    {
        lock (_inference)
        {
            Pipeline pipeline = _pipeline;
            IntentResult[] results = pipeline.Engine.Classify(Features, texts, intentFilters);
            if (pipeline.Slm is null || _slm is null)
            {
                return results;
            }
            SlmDeadline budget = SlmDeadline.After(TimeSpan.FromMilliseconds(_slm.Settings.BudgetMilliseconds));
            Interlocked.Add(ref _slmTimeouts, SlmFallback.Apply(results, texts, intentFilters, pipeline.Slm, budget));
            return results;
        }
    }

    private static LanguageModelParts? LoadLanguageModel(SlmSettings settings, ILogger logger, out string? error)
    {
        LlamaModel? model = null;
        try
        {
            model = LlamaModel.Load(settings.Model!);
            DecoderTokenizer tokenizer = model.CreateTokenizer();
            logger.LogInformation("Language model {Name} ({File}, {MB:F0} MB mapped) for {Mode} mode", model.Name, settings.Model, model.FileBytes / 1e6, settings.ParsedMode());
            error = null;
            return new LanguageModelParts(model, tokenizer, settings);
        }
        catch (Exception e) when (e is GgufFormatException or IOException or UnauthorizedAccessException)
        {
            model?.Dispose();
            error = e is FileNotFoundException ? $"language model file {settings.Model} does not exist" : e.Message;
            logger.LogError("Language model not used, the classifier answers alone: {Error}", error);
            return null;
        }
    }

    private static SlmRecognizer? BuildRecognizer(LanguageModelParts slm, IntentDefinitions definitions, ILogger logger, ref string? error)
    {
        try
        {
            SlmRecognizer recognizer = SlmRecognizer.Build(slm.Model, slm.Tokenizer, definitions, slm.Settings.Options());
            logger.LogInformation("Language model prompt for {Intents} intents: {Tokens} tokens in {Milliseconds:F0} ms, KV cache {MB:F1} MB",
                definitions.IntentNames.Count, recognizer.PromptTokens, recognizer.PromptSeconds * 1000, recognizer.CacheBytes / 1e6);
            return recognizer;
        }
        catch (ArgumentException e)
        {
            error = e.Message;
            logger.LogError("Language model not used for these intents: {Error}", e.Message);
            return null;
        }
    }

    private static void Log(ILogger logger, IntentEngine engine)
    {
        TrainingReport r = engine.Report;
        logger.LogInformation("Intents from {Source}: {Intents} intents, {Examples} examples, {How} in {Seconds:F1} s, threshold {Threshold:F3}",
            engine.Definitions.Source, r.Intents, r.Examples, r.FromCache ? "head loaded from cache" : "trained", r.Seconds, r.Threshold);
        foreach (string problem in r.Problems.Take(5))
        {
            logger.LogWarning("Template skipped: {Problem}", problem);
        }
    }

    public void Dispose()
    {
        Features.Dispose();
        _pipeline.Slm?.Dispose();
        _slm?.Model.Dispose();
        foreach (BertModel model in _models)
        {
            model.Dispose();
        }
        _training.Dispose();
    }
}
