using System.Diagnostics;
using EdgeSlm.EdgeModule.Conversion;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Model;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Module;

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
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _training = new(1, 1);
    private IntentEngine _engine;

    private IntentRuntime(BertModel[] models, SentenceFeatures features, IntentEngine engine, IntentEngineSettings engineSettings, string? cacheDirectory, int threads, ILogger logger)
    {
        _models = models;
        Features = features;
        _engine = engine;
        _engineSettings = engineSettings;
        _cacheDirectory = cacheDirectory;
        _threads = threads;
        _logger = logger;
    }

    /// <summary>The inference worker's encoder. Only the worker may call it.</summary>
    public SentenceFeatures Features { get; }

    public IntentEngine Engine => Volatile.Read(ref _engine);

    /// <summary>The training settings in use; later retrains keep them.</summary>
    public IntentEngineSettings EngineSettings => Volatile.Read(ref _engineSettings);

    public string ModelDescription => string.Join(" + ", _models.Select(m => $"{m.Name} ({Path.GetFileName(m.Path)})"));

    /// <summary>Loads the model (converting the bundled one on first use) and trains (or loads) the head.</summary>
    public static IntentRuntime Start(ModuleSettings settings, ILogger logger)
    {
        var clock = Stopwatch.StartNew();
        if (!string.IsNullOrWhiteSpace(settings.CacheDirectory))
        {
            Environment.SetEnvironmentVariable(ModelCache.CacheVariable, settings.CacheDirectory);
        }
        string modelPath = ModelCache.Resolve(settings.Model, null);
        var models = new[] { BertModel.Load(modelPath) };
        logger.LogInformation("Model {Model} loaded in {Milliseconds} ms", models[0].Name, clock.ElapsedMilliseconds);
        var features = new SentenceFeatures(models, settings.Threads);
        try
        {
            IntentDefinitions definitions = LoadDefinitions(settings.Intents);
            var engineSettings = new IntentEngineSettings(Threshold: settings.Threshold);
            string? cache = ModelCache.Directory;
            IntentEngine engine = IntentEngine.Train(features, definitions, engineSettings, cache);
            Log(logger, engine);
            return new IntentRuntime(models, features, engine, engineSettings, cache, settings.Threads, logger);
        }
        catch
        {
            features.Dispose();
            models[0].Dispose();
            throw;
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
                using var features = new SentenceFeatures(_models, _threads);
                IntentEngine engine = IntentEngine.Train(features, definitions, settings, _cacheDirectory);
                Volatile.Write(ref _engineSettings, settings);
                Volatile.Write(ref _engine, engine);
                Log(_logger, engine);
                return engine;
            }, cancellation);
        }
        finally
        {
            _training.Release();
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
        foreach (BertModel model in _models)
        {
            model.Dispose();
        }
        _training.Dispose();
    }
}

/// <summary>The sample home intents (lights, climate, timers, media, weather) built into the binary.</summary>
public static class SampleIntents
{
    public const string ResourceName = "EdgeSlm.EdgeModule.intents.home.yaml";

    public static string Text()
    {
        using Stream stream = typeof(SampleIntents).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the built-in intents ({ResourceName}) are missing from this build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public static IntentDefinitions Load() => IntentDefinitions.FromYaml(Text(), "built-in home.yaml");
}
